"""Mutation testing of the money and queue code (issue 23): how many deliberate bugs the tests catch.

    .venv/bin/python bench/mutation.py                 # mutmut run, then the report (tens of minutes)
    .venv/bin/python bench/mutation.py --report-only   # the report of the last run (mutants/)
    .venv/bin/python bench/mutation.py --survivors     # after adding tests: test the survivors again

What is mutated and which tests run is ``[tool.mutmut]`` in pyproject.toml: the money (domain/money,
store/units: hold, settle, top-up, the ledger), the error catalogue and its charge rules, the task
service, leases and completion (store/leases, service/completions) and the webhook retry schedule
(domain/webhooks), against the SQLite half of tests/integration and the unit tests of webhooks, not
the slow ones. mutmut runs each mutant against the tests that reached the mutated function in its
first, traced run of that selection, so a mutant costs seconds, not a whole suite.

The score is killed / (killed + survived). A timeout (the mutant made the tests hang: they noticed)
and a segfault count as killed; "no tests" (no selected test reached the mutated function) counts as
survived: an untested function is a hole, not a pass. "skipped", "suspicious" and anything mutmut did
not check are listed apart and left out of the score. A mutant's test run that uses no CPU for
``--idle-timeout`` seconds (45) is hung (a completion batcher that never stops, say) and is ended
with mutmut's own timeout signal, instead of waiting out mutmut's wall limit (15 x the tests' time).

mutmut 3 mutates function bodies only: module-level constants (the catalogue's rows, the retry
schedule's tuple) are not mutated; tests/integration/test_catalogue.py pins every row and
tests/unit/test_money_rules.py every schedule step. It runs in fork mode: each mutant's tests run in
a process forked after the first run imported cracker, so a function that only runs at import (the
catalogue's row builders) is exercised by a test calling it, not by the import.

Every surviving mutant is printed with file:line and its diff. The ceiling beside our figure is
100 % (every mutant killed); equivalent mutants (no behaviour can tell them apart) keep real scores
below it: bench/RESULTS.md ("Mutation testing") lists them with the reason.

Not part of the normal test command: scripts/test.sh and CI never run it.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"
MUTANTS = ROOT / "mutants"

#: mutmut's exit-code meanings (mutmut.stats.status_by_exit_code), folded into this report's classes.
_STATUS = {
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
    36: "timeout", 24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault",
    -9: "segfault", 37: "caught by type check", None: "not checked",
}
_KILLED = {"killed", "timeout", "segfault", "caught by type check"}
_SURVIVED = {"survived", "no tests"}


@dataclass(frozen=True, slots=True)
class Mutant:
    name: str
    module: str  # src/cracker/...py
    status: str


def _mutant_children(parent: int) -> dict[int, int]:
    """pid -> CPU ticks used, of the processes under mutmut that test a mutant (``mutmut: <name>``).

    Descendants, not only children: a hung mutant's test process need not be mutmut's own child
    (two hung this way on 2026-12-01 and were not seen when only children were looked at)."""
    processes: dict[int, tuple[int, int, bytes]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        processes[int(stat.parent.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]), cmdline)
    under = {parent}
    grew = True
    while grew:
        found = {pid for pid, (ppid, _, _) in processes.items() if ppid in under} - under
        grew = bool(found)
        under |= found
    return {pid: ticks for pid, (_, ticks, cmdline) in processes.items()
            if pid in under and pid != parent and cmdline.startswith(b"mutmut:")}


def watch_for_hangs(parent: int, idle_s: float, done: threading.Event) -> None:
    """A mutant that makes the app hang (a completion batcher that never stops, say) burns no CPU
    while mutmut waits out its wall limit, up to 15 x the tests' time: minutes each. One that has
    used no CPU for ``idle_s`` gets SIGXCPU, mutmut's own timeout signal, and counts as a timeout."""
    seen: dict[int, tuple[int, float]] = {}
    while not done.wait(5):
        now = time.monotonic()
        for pid, ticks in _mutant_children(parent).items():
            before = seen.get(pid)
            if before is None or before[0] != ticks:
                seen[pid] = (ticks, now)
            elif now - before[1] >= idle_s:
                print(f"\n[bench] mutant process {pid} idle for {idle_s:.0f} s: timeout", flush=True)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGXCPU)
                seen[pid] = (ticks, now)


def load_results() -> list[Mutant]:
    out = []
    for meta in sorted(MUTANTS.glob("src/**/*.py.meta")):
        module = str(meta.relative_to(MUTANTS)).removesuffix(".meta")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            out.append(Mutant(name, module, _STATUS.get(code, "suspicious")))
    return out


def _function_line(module: str, mangled: str) -> int:
    """The first line of the function a mutant lives in (mutmut names them ``x_func`` or
    ``xǁClassǁmethod``)."""
    if "ǁ" in mangled:
        _, cls, func = mangled.split("ǁ")
    else:
        cls, func = None, mangled.removeprefix("x_")
    tree = ast.parse((ROOT / module).read_text())
    scope: list[ast.stmt] = tree.body
    if cls is not None:
        scope = next(n.body for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls)
    for node in scope:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == func:
            return min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return 0


def show(mutant: Mutant) -> tuple[int, str]:
    """(line in the source file, the diff mutmut shows)."""
    diff = subprocess.run([str(MUTMUT), "show", mutant.name], cwd=ROOT, capture_output=True, text=True,
                          check=False).stdout
    mangled = mutant.name.rsplit(".", 1)[1].rsplit("__mutmut_", 1)[0]
    first = _function_line(mutant.module, mangled)
    line = first
    hunk = re.search(r"^@@ -(\d+)", diff, re.MULTILINE)
    if hunk and first:
        offset = int(hunk.group(1))
        for text in diff[hunk.end():].splitlines()[1:]:
            if text.startswith("-"):
                break
            if not text.startswith("+"):
                offset += 1
        line = first + offset - 1
    body = "\n".join(row for row in diff.splitlines() if not row.startswith("#"))
    return line, body


def report(mutants: list[Mutant], seconds: float | None) -> float:
    by_module: dict[str, Counter[str]] = {}
    for m in mutants:
        by_module.setdefault(m.module, Counter())[m.status] += 1
    print("\n| module | mutants | killed | timeout | survived | no tests | other |")
    print("|---|---|---|---|---|---|---|")
    total: Counter[str] = Counter()
    for module, counts in sorted(by_module.items()):
        total.update(counts)
        other = sum(v for k, v in counts.items() if k not in _KILLED | _SURVIVED)
        killed = sum(counts[k] for k in ("killed", "segfault", "caught by type check"))
        print(f"| {module} | {sum(counts.values())} | {killed} | {counts['timeout']} | {counts['survived']} "
              f"| {counts['no tests']} | {other} |")
    killed = sum(total[k] for k in _KILLED)
    survived = sum(total[k] for k in _SURVIVED)
    score = 100.0 * killed / (killed + survived) if killed + survived else 0.0
    others = {k: v for k, v in total.items() if k not in _KILLED | _SURVIVED}
    print(f"\n{sum(total.values())} mutants: {killed} killed (timeouts {total['timeout']}), "
          f"{survived} survived (no tests {total['no tests']}), outside the score: {others or 'none'}")
    if seconds is not None:
        print(f"run time: {seconds / 60:.1f} min (2 shared cores, other jobs running)")
    survivors = [m for m in mutants if m.status in _SURVIVED]
    if survivors:
        print(f"\nsurviving mutants ({len(survivors)}):")
    for m in survivors:
        line, diff = show(m)
        print(f"\n{m.module}:{line}  {m.name}  [{m.status}]\n{diff}")
    print(f"\nceiling: 100 % (every mutant killed); ratio {score / 100:.2f}")
    print(f"mutation score: {score:.0f} %")
    return score


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--report-only", action="store_true", help="report the last run in mutants/")
    parser.add_argument("--survivors", action="store_true",
                        help="test only the last run's survivors again (mutmut keeps every other verdict)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once")
    parser.add_argument("--idle-timeout", type=float, default=45.0,
                        help="seconds without CPU after which a mutant's test run counts as hung (a timeout)")
    args = parser.parse_args()
    seconds = None
    if not args.report_only:
        started = time.monotonic()
        # Niced: the machine is shared. mutmut prints its own progress (mutants done, killed, survived).
        command = ["nice", "-n", "10", str(MUTMUT), "run", "--max-children", str(args.max_children)]
        if args.survivors:
            command += [m.name for m in load_results() if m.status in _SURVIVED]
        print("$", " ".join(command), flush=True)
        process = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        done = threading.Event()
        # nice execs mutmut in place: the process is mutmut, and its children test the mutants.
        watcher = threading.Thread(target=watch_for_hangs, args=(process.pid, args.idle_timeout, done), daemon=True)
        watcher.start()
        code = process.wait()
        done.set()
        seconds = time.monotonic() - started
        if code != 0:
            print(f"mutmut run failed (exit {code})", file=sys.stderr)
            return code
    if not MUTANTS.is_dir():
        print("no mutants/ here: run without --report-only first", file=sys.stderr)
        return 2
    report(load_results(), seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
