"""The dashboard's reads with a million finished tasks in the database (issue 22).

Fills a fresh database (SQLite, and PostgreSQL with ``--postgres URL``) with ``--tasks`` finished
tasks (default 1,000,000) spread evenly over the last 7 days (the default retention), 1,000 accounts
plus one big account with a fifth of them, each task with its hold and its capture or release in the
ledger (2 rows per task), made by the database itself (a recursive CTE / generate_series). Then times
each view's reads through ``DashboardService`` (median of 5), beside a ceiling measured in the same
run: the cheapest statement that touches the same rows (a COUNT over the same index range, or a
primary-key read for a page), and the ratio.

    .venv/bin/python bench/dashboard_bench.py                    # SQLite, about 2 minutes
    .venv/bin/python bench/dashboard_bench.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

from cracker.domain.accounts import Scope
from cracker.service.dashboard import DashboardService
from cracker.store import dashboard as dashboard_sql
from cracker.store import open_store
from cracker.store.migrate import migrate

DAY = 86_400.0
WINDOW = 7 * DAY
BIG = "big-account"
TYPES = ("turnstile", "pow-sha256", "image-to-text", "recaptcha-v2")
ERRORS = ("unsolvable", "solve_timeout", "worker_lost")
#: Queue samples: one a minute per type over the window.
SAMPLES = int(WINDOW // 60) * len(TYPES)


def _fill_sql(dialect: str, n: int, now: float) -> list[str]:
    """Statements that make the accounts, ``n`` finished tasks and their ledger rows in the database."""
    if dialect == "sqlite":
        series = f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {n - 1}) "
        src = "s"
        acct = "CASE WHEN i % 5 = 0 THEN 'big-account' ELSE 'acct-' || (i % 1000) END"
        tid = "printf('t%08d', i)"
        accounts_series = "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < 999) "
        accounts_src = "s"
        false = "0"
        samples_series = f"WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i < {SAMPLES - 1}) "
        samples_src = "s"
    else:
        series = ""
        src = f"generate_series(0, {n - 1}) AS s(i)"
        acct = "CASE WHEN i % 5 = 0 THEN 'big-account' ELSE 'acct-' || (i % 1000) END"
        tid = "'t' || lpad(i::text, 8, '0')"
        accounts_series = ""
        accounts_src = "generate_series(0, 999) AS s(i)"
        false = "false"
        samples_series = ""
        samples_src = f"generate_series(0, {SAMPLES - 1}) AS s(i)"
    created = f"({now} - (i * {WINDOW} / {n}))"
    types = "CASE i % 4 " + " ".join(f"WHEN {k} THEN '{t}'" for k, t in enumerate(TYPES)) + " END"
    rejected = "(i % 7 = 3)"  # independent of the big account's i % 5: it has its share
    errors = "CASE i % 3 " + " ".join(f"WHEN {k} THEN '{e}'" for k, e in enumerate(ERRORS)) + " END"
    return [
        f"{accounts_series}INSERT INTO accounts (id, name, available, held, created_at) "
        f"SELECT 'acct-' || i, 'account ' || i, 1000000, 0, {now - WINDOW} FROM {accounts_src}",
        f"INSERT INTO accounts (id, name, available, held, created_at) VALUES ('{BIG}', 'big', 1000000, 0, {now})",
        f"{series}INSERT INTO tasks (id, account_id, type, status, params, solution, error_code, price, cost, "
        f"created_at, started_at, completed_at, deadline_at, attempts, pool_only) "
        f"SELECT {tid}, {acct}, {types}, CASE WHEN {rejected} THEN 'rejected' ELSE 'completed' END, '{{}}', "
        f"CASE WHEN {rejected} THEN NULL ELSE '{{\"token\":\"x\"}}' END, CASE WHEN {rejected} THEN {errors} END, "
        f"9, CASE WHEN {rejected} THEN 0 ELSE 9 END, {created}, {created} + 0.2, {created} + 0.5 + (i % 100) / 40.0, "
        f"{created} + 120, 1, {false} FROM {src}",
        f"{series}INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at) "
        f"SELECT {acct}, {tid}, 'hold', -9, 9, {created} FROM {src}",
        f"{series}INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at) "
        f"SELECT {acct}, {tid}, CASE WHEN {rejected} THEN 'release' ELSE 'capture' END, "
        f"CASE WHEN {rejected} THEN 9 ELSE 0 END, -9, {created} + 1 FROM {src}",
        f"INSERT INTO api_keys (id, account_id, key_hash, prefix, scope, created_at) "
        f"VALUES ('bench-key', '{BIG}', '{'0' * 64}', 'ck_bench', 'client', {now})",
        # A minute's queue samples of every type over the 7 days (their default retention).
        f"{samples_series}INSERT INTO queue_samples (sampled_at, type, pending, running) "
        f"SELECT {now // 60 * 60} - (i / {len(TYPES)}) * 60, {types}, i % 50, i % 8 FROM {samples_src}",
    ]


async def _median_ms(work: Callable[[], Awaitable[Any]], repeat: int = 5) -> float:
    await work()  # warm the cache: every figure is of a warm database, as a busy server's is
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        await work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


async def _measure(url: str, label: str) -> None:
    store = open_store(url)
    service = DashboardService(store, session_ttl_s=3600)
    now = time.time()

    async def ceiling(sql: str) -> Any:
        return await store.read(lambda r: r.conn.execute(text(sql)).all())

    since_day = now - DAY
    since_month = now - 30 * DAY
    record = await store.read(lambda r: r.get_api_key("0" * 64))
    assert record is not None and record.scope is Scope.CLIENT
    session = await service.sign_in(record)
    depths = {("turnstile", "pending"): 3, ("turnstile", "running"): 2}
    newest = await service.tasks(BIG)
    task_cursor = (newest[-1].created_at, newest[-1].id)
    accounts = await service.accounts()
    account_cursor = (accounts[-1].created_at, accounts[-1].id)
    rows: list[tuple[str, Callable[[], Awaitable[Any]], str]] = [
        ("session lookup (every page)", lambda: service.session(session.token),
         "SELECT token_hash FROM dashboard_sessions LIMIT 1"),
        ("operator overview, last 24 h (all accounts)", lambda: service.operator_overview(depths),
         f"SELECT count(*) FROM tasks WHERE created_at >= {since_day}"),
        ("big account: charts, 24 h by hour", lambda: service.account_charts(BIG, window_s=86_400, bucket_s=3600),
         f"SELECT count(*) FROM tasks WHERE account_id = '{BIG}' AND created_at >= {since_day}"),
        ("big account: charts, 30 days by day (its 200k tasks)",
         lambda: service.account_charts(BIG, window_s=30 * 86_400, bucket_s=86_400),
         f"SELECT count(*) FROM tasks WHERE account_id = '{BIG}' AND created_at >= {since_month}"),
        ("big account: task page (200 newest)", lambda: service.tasks(BIG),
         "SELECT id FROM tasks WHERE id = 't00000000'"),
        ("big account: task page, rejected only", lambda: service.tasks(BIG, status="rejected"),
         "SELECT id FROM tasks WHERE id = 't00000000'"),
        ("big account: task page, pending only (none: answered by the partial pending index)",
         lambda: service.tasks(BIG, status="pending"),
         f"SELECT count(*) FROM tasks WHERE account_id = '{BIG}'"),
        ("big account: ledger page (200 newest)", lambda: service.ledger(BIG),
         "SELECT id FROM ledger WHERE id = 1"),
        ("big account: ledger page, top-ups only (none)", lambda: service.ledger(BIG, kind="topup"),
         f"SELECT count(*) FROM ledger WHERE account_id = '{BIG}'"),
        ("accounts list (200 newest)", lambda: service.accounts(), "SELECT id FROM accounts WHERE id = 'acct-1'"),
        ("big account: task page 2 (keyset after the 200 newest)", lambda: service.tasks(BIG, before=task_cursor),
         "SELECT id FROM tasks WHERE id = 't00000000'"),
        ("accounts list, page 2 (keyset)", lambda: service.accounts(before=account_cursor),
         "SELECT id FROM accounts WHERE id = 'acct-1'"),
        (f"queue samples: hourly peaks, 24 h ({SAMPLES // 7:,} of {SAMPLES:,} samples)",
         lambda: store.read(lambda r: dashboard_sql.queue_peaks(r, since_day, 3600)),
         f"SELECT count(*) FROM queue_samples WHERE sampled_at >= {since_day}"),
    ]
    print(f"\n{label}: dashboard reads, median of 5, warm")
    print("| read | ours (ms) | ceiling (ms) | ratio | ceiling statement |\n|---|---|---|---|---|")
    for name, work, ceiling_sql in rows:
        ours = await _median_ms(work)
        floor = await _median_ms(lambda sql=ceiling_sql: ceiling(sql))  # type: ignore[misc]
        print(f"| {name} | {ours:.1f} | {floor:.2f} | {ours / max(floor, 0.001):.1f} x | `{ceiling_sql[:60]}` |")
    await store.close()


def _fill(url: str, n: int) -> None:
    migrate(url)
    start = time.perf_counter()
    if url.startswith("sqlite"):
        engine = create_engine(url)
        with engine.begin() as conn:
            for statement in _fill_sql("sqlite", n, time.time()):
                conn.execute(text(statement))
        engine.dispose()
    else:
        asyncio.run(_fill_postgres(url, n))
    print(f"filled {n:,} tasks and {2 * n:,} ledger rows in {time.perf_counter() - start:.0f} s")


async def _fill_postgres(url: str, n: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            for statement in _fill_sql("postgresql", n, time.time()):
                await conn.execute(statement)
        await conn.execute("VACUUM ANALYZE")  # what autovacuum does on its own soon after a bulk load
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--postgres", help="a maintenance URL; the bench makes and drops its own database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        _fill(url, args.tasks)
        asyncio.run(_measure(url, f"SQLite, {args.tasks:,} finished tasks"))
    if args.postgres:
        _postgres(args.postgres, args.tasks)


def _postgres(admin_url: str, n: int) -> None:
    import asyncpg

    name = f"cracker_dash_bench_{int(time.time())}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = admin_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        _fill(url, n)
        asyncio.run(_measure(url, f"PostgreSQL, {n:,} finished tasks"))
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
