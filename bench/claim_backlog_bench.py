"""What a claim costs as the pending backlog grows, on SQLite: the store's own claim (the fair pick
and the lease of 8 tasks), timed in CPU, beside the same claim over an empty backlog in the same run
(the ceiling: a claim whose cost does not depend on the backlog would stay at 1.0 x).

    .venv/bin/python bench/claim_backlog_bench.py [--backlogs 0,1000,10000,30000] [--claims 200]
    PYTHONPATH=OTHER/src .venv/bin/python bench/claim_backlog_bench.py   # another version's store

A claim that reads the whole backlog (the lease of the picked tasks did, through a status index,
until fe7acd5) grows with it; a claim that reaches its rows through the right indexes does not.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import cracker
from cracker.domain.clock import new_id
from cracker.store import NewTask, Store, Writer, open_store
from cracker.store.migrate import migrate

TYPES = ["turnstile"]
LIMIT = 8


async def fill(store: Store, account_id: str, count: int) -> None:
    """``count`` pending tasks, created through the store, in chunks."""
    done = 0
    while done < count:
        chunk = min(500, count - done)
        at = time.time()
        await asyncio.gather(*[
            store.create_task(NewTask(task_id=new_id(), account_id=account_id, type="turnstile", params={},
                                      price=1, created_at=at, deadline_at=at + 3600))
            for _ in range(chunk)
        ])
        done += chunk


async def claim_cost(store: Store, claims: int) -> float:
    """CPU seconds (all threads) per claim of LIMIT tasks."""
    spent = 0.0
    for _ in range(claims):
        started = time.process_time()
        claimed = await store.claim_tasks(TYPES, "bench", LIMIT, 60.0, time.time())
        spent += time.process_time() - started
        if len(claimed) != LIMIT:
            raise RuntimeError(f"claimed {len(claimed)} of {LIMIT}")
    return spent / claims


async def run(backlogs: list[int], claims: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="cracker-claim-"))
    url = f"sqlite:///{folder / 'claim.db'}"
    migrate(url)
    store = open_store(url)
    try:
        account_id = new_id()

        def account(tx: Writer) -> None:
            tx.insert_account(account_id, "bench", time.time())
            tx.top_up(account_id, 10**12, time.time())

        await store.write(account)
        print(f"cracker from {Path(cracker.__file__).parent}; {claims} claims of {LIMIT} per backlog size")
        pending = 0
        ceiling = None
        for backlog in sorted(backlogs):
            # The claims take claims x LIMIT tasks: ``backlog`` are still pending after the last.
            wanted = backlog + claims * LIMIT
            await fill(store, account_id, wanted - pending)
            pending = wanted
            cost = await claim_cost(store, claims)
            pending -= claims * LIMIT
            ceiling = ceiling or cost
            print(f"  backlog {backlog:>7,}: {cost * 1e6:8.0f} us CPU per claim = {cost / ceiling:5.1f} x "
                  f"the claim over the smallest backlog ({ceiling * 1e6:.0f} us)", flush=True)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backlogs", default="0,1000,10000,30000")
    parser.add_argument("--claims", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(run([int(b) for b in args.backlogs.split(",")], args.claims))


if __name__ == "__main__":
    sys.exit(main())
