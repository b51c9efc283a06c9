"""The hot path on PostgreSQL: one statement, one round trip, per create, claim, completion batch
and poll, over a plain asyncpg pool (prepared statements cached per connection).

Through SQLAlchemy a create was five round trips (BEGIN, hold, ledger row, task, COMMIT) and
~1.2 ms of Python; here it is one data-modifying CTE in autocommit: a single statement is a
transaction, so the hold, its ledger row and the task are still all or nothing. Measured numbers
and the reasoning are in ``bench/RESULTS.md`` ("End to end").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import asyncpg

from cracker.domain.clock import new_id
from cracker.domain.errors import ServiceUnavailable
from cracker.domain.tasks import ClaimedTask, Task, TaskStatus, TaskView
from cracker.domain.workers import Completion
from cracker.store.hot_path import NewTask
from cracker.store.notify import asyncpg_dsn
from cracker.store.sql import _TASK_COLUMNS, IntegrityError, _dumps, _task_from_row, _view_from_row

T = TypeVar("T")

_COLUMNS = ", ".join(_TASK_COLUMNS)
_T_COLUMNS = ", ".join(f"t.{name}" for name in _TASK_COLUMNS)
_PENDING, _RUNNING, _COMPLETED = TaskStatus.PENDING.value, TaskStatus.RUNNING.value, TaskStatus.COMPLETED.value

# $1 task id, $2 account, $3 price, $4 now, $5 type, $6 params, $7 deadline, $8 callback, $9 pool_only
_CREATE = f"""
WITH held AS (
    UPDATE accounts SET available = available - $3, held = held + $3
    WHERE id = $2 AND available >= $3
    RETURNING id
), hold_entry AS (
    INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at)
    SELECT id, $1, 'hold', -$3::bigint, $3, $4 FROM held
), task AS (
    INSERT INTO tasks (id, account_id, type, status, params, price, created_at, deadline_at, attempts,
                       callback_url, pool_only)
    SELECT $1, id, $5, '{_PENDING}', $6, $3, $4, $7, 0, $8, $9 FROM held
    RETURNING id
){{remember}}
SELECT count(*) FROM task
"""  # noqa: S608 - only this module's constants are formatted in; values are bind parameters
_CREATE_PLAIN = _CREATE.format(remember="")
# $10 key, $11 request hash. A plain INSERT: a key already there (live, or expired and not yet
# purged) fails the whole statement on the primary key, and the caller sorts out which.
_CREATE_WITH_KEY = _CREATE.format(remember=""", remembered AS (
    INSERT INTO idempotency_keys (account_id, key, request_hash, task_id, created_at)
    SELECT id, $10, $11, $1, $4 FROM held
)""")

# $1 types, $2 limit, $3 owner, $4 lease expiry, $5 now. MATERIALIZED: the pick runs once (as a
# plain subquery the planner may rerun it per row, and LIMIT then takes more than $2 rows).
_CLAIM = f"""
WITH picked AS MATERIALIZED (
    SELECT id FROM tasks
    WHERE status = '{_PENDING}' AND type = ANY($1::text[]) {{builtin}}
    ORDER BY created_at LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE tasks SET status = '{_RUNNING}', lease_owner = $3, lease_expires_at = $4,
                 started_at = coalesce(started_at, $5), attempts = attempts + 1
WHERE id IN (SELECT id FROM picked) AND status = '{_PENDING}'
RETURNING {_COLUMNS}
"""  # noqa: S608
_CLAIMS = {True: _CLAIM.format(builtin="AND NOT pool_only"), False: _CLAIM.format(builtin="")}

# $1 ids, $2 owners, $3 attempts, $4 solutions, $5 delivery ids, $6 now. Fenced like every
# completion (status, owner and attempt must still match); the accounts are settled with one
# UPDATE per account, in id order (two batches lock shared accounts in the same order), and the
# ledger's unique (task, kind) refuses a second capture.
_COMPLETE = f"""
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[])
        AS b(id, owner, attempt, solution, delivery_id)
), done AS (
    UPDATE tasks t SET status = '{_COMPLETED}', solution = b.solution, error_code = NULL, error_message = NULL,
                       cost = t.price, completed_at = $6, lease_owner = NULL, lease_expires_at = NULL
    FROM batch b
    WHERE t.id = b.id AND t.status = '{_RUNNING}' AND t.lease_owner = b.owner AND t.attempts = b.attempt
    RETURNING {_T_COLUMNS}, b.delivery_id
), owed AS (
    SELECT account_id, sum(price) AS amount FROM done GROUP BY account_id
), locked AS (
    SELECT a.id, o.amount FROM accounts a JOIN owed o ON o.account_id = a.id ORDER BY a.id FOR UPDATE OF a
), captured AS (
    UPDATE accounts a SET held = a.held - l.amount FROM locked l WHERE a.id = l.id
), entries AS (
    INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at)
    SELECT account_id, id, 'capture', 0, -price, $6 FROM done
), deliveries AS (
    INSERT INTO webhook_deliveries (id, task_id, account_id, url, status, attempts, next_attempt_at, created_at)
    SELECT delivery_id, id, account_id, callback_url, 'pending', 0, $6, $6 FROM done
    WHERE callback_url IS NOT NULL
)
SELECT {_COLUMNS} FROM done
"""  # noqa: S608

_VIEW = """
SELECT id, account_id, type, status, solution, error_code, error_message, cost, created_at, started_at,
       completed_at
FROM tasks WHERE id = $1
"""

#: deadlock_detected, serialization_failure: the server rolled the statement back; run it again.
_RETRYABLE = (asyncpg.DeadlockDetectedError, asyncpg.SerializationError)
_ATTEMPTS = 4
#: The connection or the server is gone (a restart, a network cut): the client may retry.
_UNAVAILABLE = (
    OSError, asyncio.TimeoutError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError, asyncpg.AdminShutdownError,
)


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """No reset when a connection goes back to the pool.

    asyncpg's default reset (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``) is
    one more round trip per statement: it was a third of the server's statements. These
    connections run only this module's statements, which leave no session state behind.
    """


class PostgresHotPath:
    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self._dsn = asyncpg_dsn(url)
        self._max_size = max_size
        self._pool: asyncpg.Pool | None = None
        self._opening: asyncio.Lock | None = None

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            if self._opening is None:
                self._opening = asyncio.Lock()
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn, min_size=1, max_size=self._max_size,
                        # Closed after a minute unused, so a restarted server leaves few dead ones.
                        max_inactive_connection_lifetime=60, reset=_keep_session,
                    )
        return self._pool

    async def _run(self, query: Callable[[asyncpg.Pool], Awaitable[T]], *, retry: bool = False) -> T:
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await query(await self._get_pool())
            except _RETRYABLE:
                if not retry or attempt == _ATTEMPTS:
                    raise
                await asyncio.sleep(random.uniform(0, 0.01 * attempt))
            except asyncpg.UniqueViolationError as exc:
                raise IntegrityError("hot path statement", None, exc) from exc
            except _UNAVAILABLE as exc:
                raise ServiceUnavailable("The database is unreachable; retry shortly") from exc
        raise AssertionError("unreachable")

    async def create_task(self, new: NewTask) -> Task | None:
        args: list[Any] = [
            new.task_id, new.account_id, new.price, new.created_at, new.type, _dumps(new.params), new.deadline_at,
            new.callback_url, new.pool_only,
        ]
        query = _CREATE_PLAIN
        if new.idempotency is not None:
            query = _CREATE_WITH_KEY
            args += list(new.idempotency)
        created = await self._run(lambda pool: pool.fetchval(query, *args))
        if not created:
            return None
        return Task(
            id=new.task_id, account_id=new.account_id, type=new.type, status=TaskStatus.PENDING, params=new.params,
            solution=None, error_code=None, error_message=None, price=new.price, cost=None,
            created_at=new.created_at, started_at=None, completed_at=None, deadline_at=new.deadline_at,
            lease_owner=None, attempts=0, callback_url=new.callback_url,
        )

    async def claim_tasks(
        self, types: Sequence[str], owner: str, limit: int, lease_s: float, now: float, *, builtin_only: bool
    ) -> list[ClaimedTask]:
        if not types or limit <= 0:
            return []
        rows = await self._run(
            lambda pool: pool.fetch(_CLAIMS[builtin_only], list(types), limit, owner, now + lease_s, now), retry=True
        )
        claimed = sorted((_task_from_row(r) for r in rows), key=lambda t: t.created_at)  # RETURNING has no order
        return [ClaimedTask(task=t, lease_owner=owner, attempt=t.attempts) for t in claimed]

    async def complete_tasks(self, items: Sequence[Completion], now: float) -> list[Task]:
        if not items:
            return []
        args = (
            [c.task_id for c in items], [c.lease_owner for c in items], [c.attempt for c in items],
            [_dumps(c.solution) for c in items], [new_id() for _ in items], now,
        )
        rows = await self._run(lambda pool: pool.fetch(_COMPLETE, *args), retry=True)
        return [_task_from_row(r) for r in rows]

    async def get_task_view(self, task_id: str) -> TaskView | None:
        row = await self._run(lambda pool: pool.fetchrow(_VIEW, task_id), retry=True)
        return _view_from_row(row) if row is not None else None

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()
