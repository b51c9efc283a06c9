"""The SQLite task path's statements reach their rows through the indexes meant for them.

SQLite plans without statistics (the store never runs ANALYZE), so a statement that tests
``status`` beside its key can be planned on a status index and walk a whole backlog: the lease of
picked tasks did that (1.7 ms per claim under 14k pending tasks, most of the writer thread's time)
until ``sqlite_sql.take`` kept its status test off the indexes. These read SQLite's own plan of
each statement on a migrated database, so that a schema or statement change that sends one of them
back to a scan fails here, not in a benchmark.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from cracker.store import sqlite_sql
from cracker.store.migrate import migrate

TYPES = ("turnstile", "altcha")


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[sqlite3.Connection]:
    path = Path(tmp_path_factory.mktemp("plans")) / "plans.db"
    migrate(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    try:
        yield conn
    finally:
        conn.close()


def plan(driver: sqlite3.Connection, sql: str, params: object) -> list[str]:
    return [str(row[3]) for row in driver.execute(f"EXPLAIN QUERY PLAN {sql}", params)]


def test_the_lease_of_picked_tasks_finds_them_by_id(driver: sqlite3.Connection) -> None:
    steps = plan(driver, sqlite_sql.take(3), ("owner", 1.0, 1.0, "a", "b", "c"))
    assert steps == [step for step in steps if "(id=?)" in step], steps


@pytest.mark.parametrize(("fenced", "captured"), sorted(sqlite_sql.FINISH))
def test_the_end_of_a_task_finds_it_by_id(driver: sqlite3.Connection, fenced: bool, captured: bool) -> None:
    params = {"id": "a", "owner": "o", "attempt": 1, "status": "completed", "solution": None, "error_code": None,
              "error_message": None, "now": 1.0}
    steps = plan(driver, sqlite_sql.FINISH[(fenced, captured)], params)
    assert steps == [step for step in steps if "(id=?)" in step], steps


def test_the_new_task_number_is_one_index_probe(driver: sqlite3.Connection) -> None:
    params = {"id": "a", "account_id": "b", "type": "turnstile", "status": "pending", "params": "{}", "price": 1,
              "created_at": 1.0, "deadline_at": 2.0, "callback_url": None, "pool_only": False, "floor": 1}
    steps = plan(driver, sqlite_sql.INSERT_TASK, params)
    assert any("COVERING INDEX ix_tasks_number" in step for step in steps), steps


def test_the_claim_reads_pending_tasks_through_the_pending_index(driver: sqlite3.Connection) -> None:
    steps = plan(driver, sqlite_sql.candidates(len(TYPES), 0, True), (*TYPES, True, 8))
    # The statement reads ``tasks`` under the aliases t, x and c besides its own name.
    reads = [step for step in steps if re.match(r"(SCAN|SEARCH) (tasks|t|x|c)\b", step)]
    assert len(reads) >= 3, steps
    assert all("ix_tasks_pending_account" in step or "(id=?)" in step for step in reads), steps


@pytest.mark.parametrize("sql", [sqlite_sql.running_accounts(len(TYPES)), sqlite_sql.any_pending(len(TYPES), True)])
def test_the_claims_status_reads_use_the_status_and_type_index(driver: sqlite3.Connection, sql: str) -> None:
    steps = plan(driver, sql, TYPES)
    assert steps and all("ix_tasks_claim (status=? AND type=?)" in step for step in steps), steps


def test_money_moves_find_the_account_by_id(driver: sqlite3.Connection) -> None:
    for sql in (sqlite_sql.HOLD, sqlite_sql.CAPTURE, sqlite_sql.RELEASE):
        steps = plan(driver, sql, {"account": "a", "amount": 1})
        assert steps and all("(id=?)" in step for step in steps), (sql, steps)
