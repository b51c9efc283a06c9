"""The task path's statements on SQLite, as SQL run on the driver (the ``sqlite3`` connection).

Every create, claim and completion runs these, on the one writer thread. Through SQLAlchemy Core
each statement cost its execution context, parameter processing and result wrapping, several
times what SQLite spends on it: the writer thread was the create's bottleneck
(bench/create_profile.py). ``units`` keeps the same statements as Core ones for PostgreSQL (and
``sqlite_tasks.create`` for its batch create); the contract suite runs both stores.
"""

from __future__ import annotations

from functools import cache

from cracker.domain.tasks import TaskStatus
from cracker.store.rows import TASK_COLUMNS

_PENDING, _RUNNING = TaskStatus.PENDING.value, TaskStatus.RUNNING.value
_LIVE = f"('{_PENDING}', '{_RUNNING}')"
_RETURNING = ", ".join(TASK_COLUMNS)

HOLD = (
    "UPDATE accounts SET available = available - :amount, held = held + :amount"
    " WHERE id = :account AND available >= :amount"
)
CAPTURE = "UPDATE accounts SET held = held - :amount WHERE id = :account"
RELEASE = "UPDATE accounts SET held = held - :amount, available = available + :amount WHERE id = :account"
LEDGER = (
    "INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?)"
)
# SQLite has no sequences: the next number is one past the highest (one writer, so no race), and
# never below the creation time in milliseconds, so numbers freed by the retention purge of the
# newest tasks are not handed out again (a client's old number never names another task).
# PostgreSQL's column defaults to a sequence instead (0012).
INSERT_TASK = (
    "INSERT INTO tasks (id, account_id, type, status, params, price, created_at, deadline_at, attempts,"
    " callback_url, pool_only, number) VALUES (:id, :account_id, :type, :status, :params, :price,"
    " :created_at, :deadline_at, 0, :callback_url, :pool_only,"
    " (SELECT max(coalesce(max(number), 0) + 1, :floor) FROM tasks))"
)


def finish(*, fenced: bool, captured: bool) -> str:
    """A live task's end, fenced by its lease when ``fenced``, its row returned. ``cost`` is what the
    account paid: the held price when captured, else zero."""
    fence = f" AND status = '{_RUNNING}' AND lease_owner = :owner AND attempts = :attempt" if fenced else ""
    return (
        "UPDATE tasks SET status = :status, solution = :solution, error_code = :error_code,"  # noqa: S608
        f" error_message = :error_message, cost = {'price' if captured else '0'}, completed_at = :now,"
        f" lease_owner = NULL, lease_expires_at = NULL WHERE id = :id AND status IN {_LIVE}{fence}"
        f" RETURNING {_RETURNING}"
    )


FINISH = {(fenced, captured): finish(fenced=fenced, captured=captured) for fenced in (False, True)
          for captured in (False, True)}


def _marks(count: int) -> str:
    return ", ".join("?" * count)


@cache
def running_accounts(types: int) -> str:
    """The account of each running task of the claim's types (``types`` placeholders). Counted by
    the caller, not by GROUP BY: SQLite would read the whole table in account order
    (ix_tasks_account) to skip the sort, 69 ms at 150k rows; the running tasks are a few per slot."""
    return f"SELECT account_id FROM tasks WHERE status = '{_RUNNING}' AND type IN ({_marks(types)})"  # noqa: S608


@cache
def take(ids: int) -> str:
    """Lease the picked pending tasks: (owner, expires, now, *ids) -> their rows.

    ``+status``: the unary plus keeps the status test off the indexes. Without statistics SQLite's
    planner chose ix_tasks_deadline (status = ?) over the primary key and walked every pending
    task to find the picked few: 1.7 ms per claim under a 14k backlog, most of the writer's time
    (bench/create_profile.py --gil, and the writer's time per unit); by id, a few microseconds."""
    return (
        f"UPDATE tasks SET status = '{_RUNNING}', lease_owner = ?, lease_expires_at = ?,"  # noqa: S608
        f" started_at = coalesce(started_at, ?), attempts = attempts + 1"
        f" WHERE id IN ({_marks(ids)}) AND +status = '{_PENDING}' RETURNING {_RETURNING}"
    )


# The fair claim's candidates, one statement: the accounts that have pending tasks, one index
# probe each (a skip scan of ix_tasks_pending_account), and each one's oldest matching tasks, no
# more than the claim's limit. Reads are bounded by accounts x limit, never by a backlog's size;
# the ranks and the cap are applied by ``sqlite_tasks.claim`` (see pg_sql.CLAIM for the order).
# INDEXED BY: without statistics (no ANALYZE) SQLite's planner took ix_tasks_deadline for
# `status = ?` and sorted every pending row by account, per claim: 0.9 ms at 400 pending, growing
# with the backlog; with the index named, 0.08 ms, flat (bench/create_profile.py found it).
_CANDIDATES = """
WITH RECURSIVE owners(account_id) AS (
    SELECT (SELECT account_id FROM tasks INDEXED BY ix_tasks_pending_account
            WHERE status = '{pending}' ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.account_id FROM tasks t INDEXED BY ix_tasks_pending_account
            WHERE t.status = '{pending}' AND t.account_id > o.account_id ORDER BY t.account_id LIMIT 1)
    FROM owners o WHERE o.account_id IS NOT NULL
)
SELECT c.account_id, c.created_at, c.id FROM owners o JOIN tasks c ON c.id IN (
    SELECT x.id FROM tasks x INDEXED BY ix_tasks_pending_account
    WHERE x.account_id = o.account_id AND x.status = '{pending}' AND x.type IN ({types}) {builtin}
      AND (? OR x.account_id IN ({accounts}))
    ORDER BY x.created_at LIMIT ?
)
ORDER BY c.account_id, c.created_at
"""


@cache
def candidates(types: int, accounts: int, builtin_only: bool) -> str:
    """The claim's candidates: (*types, any account, *accounts, limit) -> (account_id, created_at, id)
    rows. (The accounts' test is an OR with a flag, not left out, because with the index named,
    SQLite finds no plan for ``account_id IN (...)`` alone beside the skip scan.)"""
    return _CANDIDATES.format(pending=_PENDING, types=_marks(types), accounts=_marks(accounts),
                              builtin="AND NOT x.pool_only" if builtin_only else "")


@cache
def any_pending(types: int, builtin_only: bool) -> str:
    """One pending task of the types, if any (*types -> a row or none): read before a claim. By
    (status, type): the pending-by-account index would walk a whole backlog of other types (the OCR
    lane's read under a flood of proof-of-work tasks)."""
    builtin = " AND NOT pool_only" if builtin_only else ""
    return (
        f"SELECT 1 FROM tasks INDEXED BY ix_tasks_claim WHERE status = '{_PENDING}'"  # noqa: S608
        f" AND type IN ({_marks(types)}){builtin} LIMIT 1"
    )
