"""Where a create's time goes: `cracker serve` (SQLite, in-process worker) sampled by py-spy while
wrk sends `POST /v2/tasks/turnstile` (the sandbox's zero-work key), from request bytes to the
committed row and the completed task; prints the share of samples per thread, per stage and the
hottest frames.

    .venv/bin/pip install py-spy && .venv/bin/python bench/create_profile.py [--seconds 8]

Needs wrk (Debian package) and py-spy (PyPI; not a dependency of the project). Sampling slows the
server: read the shares, not the rate.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _ceiling import free_port, wait_up
from _sandbox_task import completed_task, post_script

#: Stages of a create, by the function that marks them (inclusive share of all samples).
STAGES = {
    "HTTP in and out (uvicorn, the request-context layer)": "RequestContextMiddleware.__call__",
    "  the create fast path (auth, body, validation, envelope)": "serve_create",
    "  the task service's create (admit, insert)": "TaskService.create",
    "SQLite per-task writes, on the event loop (group commit)": "SqliteStore._drain_on_loop",
    "  create: hold, ledger row, task row": "SqliteStore.create_task.<locals>.<lambda>",
    "  claim (fair pick, lease)": "SqliteStore.claim_tasks.<locals>.<lambda>",
    "  completion batch (capture, ledger row)": "SqliteStore.complete_tasks.<locals>.<lambda>",
    "  the groups' transactions: the units above, and each COMMIT": "_run_in_transaction",
    "SQLite writer thread (checkpoints, cold units, a group the lock kept off the loop)": "SqliteStore._drain",
    "  reaper (overdue tasks)": "SqliteStore.reject_overdue.<locals>.<lambda>",
    "  webhook dispatcher's pick": "WebhookService.claim_due.<locals>.<lambda>",
    "in-process worker (claim loop, sandbox solve)": "WorkerRuntime._run",
}


def summarise(raw: Path) -> None:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        frames = stack.split(";")
        threads[frames[0].split(":")[-1].strip()] += n
        own[frames[-1][:110]] += n
        for name in {f.split(" (")[0] for f in frames}:
            inclusive[name] += n
    print(f"\n{total} samples")
    print("\nper thread:")
    for name, n in threads.most_common(6):
        print(f"  {n / total:6.1%}  {name}")
    print("\nper stage (inclusive):")
    for label, marker in STAGES.items():
        print(f"  {inclusive[marker] / total:6.1%}  {label}")
    print("\nhottest frames (own time):")
    for frame, n in own.most_common(15):
        print(f"  {n / total:6.1%}  {frame}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--native", action="store_true",
                        help="also sample C frames (slows the server ~8x: it stops for each sample)")
    parser.add_argument("--gil", action="store_true",
                        help="sample only the thread holding the GIL: where the Python CPU goes, idle waits left out")
    parser.add_argument("--raw", type=Path, help="also keep py-spy's raw samples (folded stacks) at this path")
    parser.add_argument("--poll", action="store_true",
                        help="profile the poll instead: GET /v2/tasks/{id} of a completed task")
    args = parser.parse_args()
    py_spy = Path(sys.executable).with_name("py-spy")
    if shutil.which("wrk") is None or not py_spy.exists():
        raise SystemExit("needs wrk (apt-get install wrk) and py-spy (.venv/bin/pip install py-spy)")
    tmp = Path(tempfile.mkdtemp(prefix="cracker-profile-"))
    env = {**os.environ, "CRACKER_DATABASE_URL": f"sqlite:///{tmp / 'p.db'}", "CRACKER_RATE_LIMIT_PER_S": "0",
           "CRACKER_CPU_WORKERS": "1"}
    cli = [sys.executable, "-m", "cracker"]
    created = subprocess.run([*cli, "accounts", "create", "--name", "p", "--balance", "1000000", "--json"],
                             env=env, capture_output=True, text=True, check=True)
    key = json.loads(created.stdout)["api_key"]
    port = free_port()
    server = subprocess.Popen([*cli, "serve", "--port", str(port), "--log-level", "warning", "--no-access-log"],
                              env=env)
    try:
        wait_up(f"http://127.0.0.1:{port}/v2/health", server)
        wrk = ["wrk", "-H", f"x-solvium-auth: {key}", "-t", "1", "-c", str(args.connections)]
        if args.poll:
            url = f"http://127.0.0.1:{port}/v2/tasks/{completed_task(port, key)['task_id']}"
        else:
            url = f"http://127.0.0.1:{port}/v2/tasks/turnstile"
            wrk += ["-s", str(post_script(tmp))]
        subprocess.run([*wrk, "-d", "2s", url], check=True, capture_output=True)  # warm-up
        load = subprocess.Popen([*wrk, "-d", f"{args.seconds + 2}s", url], stdout=subprocess.PIPE, text=True)
        time.sleep(1)
        raw = tmp / "profile.raw"
        subprocess.run([str(py_spy), "record", "-p", str(server.pid), "-d", str(args.seconds), "-r", "250", "-f",
                        "raw", "-o", str(raw), "--threads", *(["--native"] if args.native else []),
                        *(["--gil"] if args.gil else [])],
                       check=True, capture_output=True)
        out, _ = load.communicate()
        print(next((line for line in out.splitlines() if "Requests/sec" in line), out))
        summarise(raw)
        if args.raw is not None:
            shutil.copyfile(raw, args.raw)
    finally:
        server.terminate()
        server.wait(timeout=15)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
