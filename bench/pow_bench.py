"""Proof-of-work benchmark (not a test): hash rates per core against OpenSSL, ALTCHA v1 against altcha-lib.

Run from the repository root:  .venv/bin/python bench/pow_bench.py [--challenges 5] [--seconds 1.5]
(about 5 minutes: altcha-lib's node solver needs 30 to 90 s per challenge).

1. ``openssl speed -bytes 64 sha256`` (one core), converted to hashes per second.
2. Per family, SHA-256 attempts per second on one core (the kernel run in this process, with a
   target that never matches), for the C fast path (SHA-NI and portable C) and pure Python,
   each as a ratio to OpenSSL's 64-byte rate. Friendly Captcha (BLAKE2b) is set against
   ``openssl speed -bytes 128 blake2b512``.
3. ALTCHA v1, maxnumber 1,000,000: the median solve time of the same random challenges (made
   with the ``altcha`` library) by this server's solver (the shared pool, every core) and by
   the official ``altcha-lib`` solver run with node (``solveChallenge``, as the library offers
   it in node; needs ``npm install`` in tests/unit/pow/node).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import altcha

from cracker.domain.pow_challenges import AltchaTask
from cracker.solvers.base import SolveJob
from cracker.solvers.pow import AltchaSolver, PowEngine, kernels

NODE_DIR = Path(__file__).resolve().parent.parent / "tests" / "pow" / "node"
TARGETS = {"ratio_per_core": 0.7, "altcha_vs_official": 0.5}


def say(text: str) -> None:
    print(text, flush=True)


def rate_line(family: str, path: str, rate: float, reference: float, reference_name: str) -> str:
    return f"  {family:<20} {path:<12} {rate / 1e6:7.2f} M/s per core   {rate / reference:5.2f} x {reference_name}"


def openssl_rate(algorithm: str, size: int, seconds: int, evp: bool = False) -> float:
    """Hashes per second of ``openssl speed -bytes size`` (its figure is in 1000s of bytes/s)."""
    command = ["openssl", "speed", "-seconds", str(seconds), "-bytes", str(size)]
    out = subprocess.run(
        [*command, "-evp", algorithm] if evp else [*command, algorithm], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(rf"^{re.escape(algorithm)}\s+([\d.]+)k", out, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"cannot read openssl speed output:\n{out}")
    return float(match.group(1)) * 1000 / size


def attempts_per_second(run: Callable[[int, int], Any], seconds: float) -> float:
    """Grow the batch until one takes ``seconds``, and answer that batch's rate."""
    start, batch = 10**6, 2000
    while True:
        began = time.perf_counter()
        run(start, start + batch)
        took = time.perf_counter() - began
        if took >= seconds:
            return batch / took
        batch = int(batch * min(10.0, max(1.5, seconds / max(took, 1e-6))))
        start += batch


def family_workloads() -> dict[str, tuple[bytes, kernels.MatchMode, bytes | str]]:
    """A realistic prefix and a never-matching target per SHA-256 family."""
    salt = f"{secrets.token_hex(12)}?expires={int(time.time()) + 600}&"
    mcaptcha_string, mcaptcha_salt = secrets.token_hex(15), secrets.token_hex(15)
    mcaptcha_prefix = mcaptcha_salt.encode() + len(mcaptcha_string).to_bytes(8, "little") + mcaptcha_string.encode()
    return {
        "pow-sha256 (d=16)": (secrets.token_hex(32).encode(), "hexprefix", "0" * 16),
        "altcha v1": (salt.encode(), "eq", secrets.token_bytes(32)),
        "cap (s=32, d=16)": (secrets.token_hex(16).encode(), "hexprefix", secrets.token_hex(8)),
        "mcaptcha": (mcaptcha_prefix, "ge16", b"\xff" * 16),
    }


def bench_rates(seconds: float, openssl_sha: float, openssl_blake: float) -> list[dict[str, Any]]:
    native = kernels._native_sha256  # the kernels module's handle of the C extension (or None)
    default = native.implementation() if native is not None else None
    rows = []
    for family, (prefix, mode, target) in family_workloads().items():
        if native is not None:
            for implementation in ("sha-ni", "portable"):
                try:
                    native.set_implementation(implementation)
                except ValueError:
                    continue
                raw = bytes.fromhex(target + "0" * (len(target) % 2)) if isinstance(target, str) else target
                nibbles = len(target) if isinstance(target, str) else 0
                code = {"eq": 0, "hexprefix": 1, "ge16": 2}[mode]

                def run_native(
                    a: int, b: int, prefix: bytes = prefix, raw: bytes = raw, nibbles: int = nibbles, code: int = code
                ) -> Any:
                    return native.search(prefix, a, b, code, raw, nibbles, None)

                rate = attempts_per_second(run_native, seconds)
                rows.append(
                    {"family": family, "path": f"C {implementation}", "rate": rate, "ratio": rate / openssl_sha}
                )
                say(rate_line(family, f"C {implementation}", rate, openssl_sha, "OpenSSL"))
            native.set_implementation(default)

        def run_python(
            a: int, b: int, prefix: bytes = prefix, mode: kernels.MatchMode = mode, target: bytes | str = target
        ) -> Any:
            return kernels.search_decimal_python("sha256", prefix, mode, target, a, b, -1)

        rate = attempts_per_second(run_python, seconds)
        rows.append({"family": family, "path": "Python", "rate": rate, "ratio": rate / openssl_sha})
        say(rate_line(family, "Python", rate, openssl_sha, "OpenSSL"))
    block = bytes(128)
    rate = attempts_per_second(lambda a, b: kernels.search_blake2b((block, 0), a, b, -1), seconds)
    rows.append({"family": "friendly-captcha (BLAKE2b)", "path": "Python", "rate": rate, "ratio": rate / openssl_blake})
    say(rate_line("friendly-captcha", "Python", rate, openssl_blake, "OpenSSL blake2b512, 128 B"))
    return rows


def official_altcha_times(challenges: list[dict[str, Any]]) -> list[float]:
    """Milliseconds per challenge of altcha-lib's solveChallenge under node."""
    node = subprocess.Popen(
        ["node", "altcha_solve.mjs"], cwd=NODE_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert node.stdin is not None and node.stdout is not None
    node.stdin.write(json.dumps(challenges))
    node.stdin.close()
    times = []
    for index, line in enumerate(node.stdout, start=1):
        result = json.loads(line)
        times.append(result["ms"])
        say(f"  altcha-lib (node)   challenge {index}/{len(challenges)}: {result['ms']:8.1f} ms")
    node.wait()
    return times


async def our_altcha_times(challenges: list[dict[str, Any]], workers: int | None) -> list[float]:
    times = []
    async with PowEngine(workers=workers) as engine:
        solver = AltchaSolver(engine)
        label = f"cracker ({engine.workers} worker{'s' if engine.workers > 1 else ''})"
        for index, challenge in enumerate(challenges, start=1):
            params = AltchaTask.model_validate({"challenge": challenge}).model_dump(mode="json")
            began = time.perf_counter()
            solution = await solver.solve(SolveJob(str(uuid.uuid4()), "altcha", params, time.time() + 120))
            ms = (time.perf_counter() - began) * 1000
            times.append(ms)
            say(f"  {label:<19} challenge {index}/{len(challenges)}: {ms:8.1f} ms (number {solution['number']})")
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--challenges", type=int, default=5, help="ALTCHA v1 challenges to time (default 5)")
    parser.add_argument("--seconds", type=float, default=1.5, help="seconds per hash-rate measurement")
    args = parser.parse_args()

    say(
        f"machine: {os.cpu_count()} cores, {sys.version.split()[0]}, "
        f"C fast path: {kernels._native_sha256.implementation() if kernels._native_sha256 else 'not built'}"
    )
    say("[1/3] openssl speed (one core) ...")
    openssl_sha = openssl_rate("sha256", 64, 3)
    openssl_blake = openssl_rate("blake2b512", 128, 2, evp=True)
    say(f"  openssl sha256, 64-byte messages: {openssl_sha / 1e6:.2f} M hashes/s")
    say(f"  openssl blake2b512, 128-byte messages: {openssl_blake / 1e6:.2f} M hashes/s")

    say("[2/3] attempts per second per core, per family ...")
    rows = bench_rates(args.seconds, openssl_sha, openssl_blake)

    say(f"[3/3] ALTCHA v1, maxnumber 1,000,000, {args.challenges} random challenges ...")
    created = [
        altcha.create_challenge_v1(
            altcha.ChallengeOptionsV1(max_number=1_000_000, hmac_key=secrets.token_hex(8))
        ).to_dict()
        for _ in range(args.challenges)
    ]
    ours = asyncio.run(our_altcha_times(created, None))
    ours_one = asyncio.run(our_altcha_times(created, 1))
    official: list[float] = []
    if shutil.which("node") and (NODE_DIR / "node_modules" / "altcha-lib").is_dir():
        official = official_altcha_times(
            [
                {
                    "algorithm": c["algorithm"],
                    "challenge": c["challenge"],
                    "salt": c["salt"],
                    "maxnumber": c["maxNumber"],
                }
                for c in created
            ]
        )
    else:
        say("  altcha-lib not installed (cd tests/unit/pow/node && npm install): official solver skipped")

    say("\nSummary")
    best = {}
    for row in rows:
        best[row["family"]] = max(best.get(row["family"], 0.0), row["ratio"])
    for family, ratio in best.items():
        verdict = (
            "" if "BLAKE2b" in family else ("  ok" if ratio >= TARGETS["ratio_per_core"] else "  BELOW TARGET 0.7")
        )
        say(f"  {family:<28} best path {ratio:5.2f} x OpenSSL per core{verdict}")
    median_ours, median_one = statistics.median(ours), statistics.median(ours_one)
    say(f"  ALTCHA v1 median: cracker {median_ours:.1f} ms (all cores), {median_one:.1f} ms (1 worker)")
    if official:
        median_official = statistics.median(official)
        share = median_ours / median_official
        verdict = "ok" if share <= TARGETS["altcha_vs_official"] else "ABOVE TARGET 0.5"
        say(f"  altcha-lib (node) median {median_official:.1f} ms -> cracker takes {share:.3f} of it  {verdict}")


if __name__ == "__main__":
    main()
