"""The SQL of the PostgreSQL store's per-task operations: one statement each, run over asyncpg.

Each is a single statement, so each is a transaction by itself in autocommit: a create's hold,
ledger row and task, or an end's task row, settlement, ledger rows and webhook outbox rows, are
all or nothing without BEGIN and COMMIT round trips.
"""

from __future__ import annotations

from cracker.domain.tasks import TaskStatus
from cracker.store.rows import TASK_COLUMNS, VIEW_COLUMNS

_COLUMNS = ", ".join(TASK_COLUMNS)
_T_COLUMNS = ", ".join(f"t.{name}" for name in TASK_COLUMNS)
_PENDING, _RUNNING = TaskStatus.PENDING.value, TaskStatus.RUNNING.value

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
CREATE = _CREATE.format(remember="")
# $10 key, $11 request hash. A plain INSERT: a key already there (live, or expired and not yet
# purged) fails the whole statement on the primary key; see FORGET_EXPIRED_KEY.
CREATE_WITH_KEY = _CREATE.format(remember=""", remembered AS (
    INSERT INTO idempotency_keys (account_id, key, request_hash, task_id, created_at)
    SELECT id, $10, $11, $1, $4 FROM held
)""")
# Creates without an idempotency key that arrived in one event-loop turn, as one statement (one
# round trip, one commit): $1 ids, $2 accounts, $3 prices, $4 created_at, $5 types, $6 params,
# $7 deadlines, $8 callback urls, $9 pool_only, one element per task. An account is held the sum
# of its tasks' prices only if it can pay them all; otherwise none of its tasks is created here
# (the caller then creates them one by one with CREATE, in order, which takes as many as the
# balance allows). The accounts are locked in id order, as the end statement locks them, so that two
# groups, or a group and an end, sharing accounts never deadlock. Returns the ids created.
#
# CREATE_GROUP[True], the first pass over a turn's creates, skips the accounts whose row another
# transaction holds (SKIP LOCKED): one account's backlog of creates and completions, queueing on
# its own row, must not hold up another account's create that shares its group. The caller runs
# each skipped account's tasks afterwards as a group of that account alone, CREATE_GROUP[False],
# which waits for its row.
_CREATE_GROUP = f"""
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::text[], $6::text[],
                         $7::float8[], $8::text[], $9::boolean[])
        AS b(id, account_id, price, created_at, type, params, deadline_at, callback_url, pool_only)
), owed AS (
    SELECT account_id, sum(price) AS amount FROM batch GROUP BY account_id
), locked AS (
    SELECT a.id, o.amount FROM accounts a JOIN owed o ON o.account_id = a.id
    WHERE a.available >= o.amount ORDER BY a.id FOR UPDATE OF a {{skip}}
), held AS (
    UPDATE accounts a SET available = a.available - l.amount, held = a.held + l.amount
    FROM locked l WHERE a.id = l.id AND a.available >= l.amount
    RETURNING a.id
), hold_entries AS (
    INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at)
    SELECT b.account_id, b.id, 'hold', -b.price, b.price, b.created_at FROM batch b JOIN held h ON h.id = b.account_id
), created AS (
    INSERT INTO tasks (id, account_id, type, status, params, price, created_at, deadline_at, attempts,
                       callback_url, pool_only)
    SELECT b.id, b.account_id, b.type, '{_PENDING}', b.params, b.price, b.created_at, b.deadline_at, 0,
           b.callback_url, b.pool_only
    FROM batch b JOIN held h ON h.id = b.account_id
    RETURNING id
)
SELECT id FROM created
"""  # noqa: S608
CREATE_GROUP = {True: _CREATE_GROUP.format(skip="SKIP LOCKED"), False: _CREATE_GROUP.format(skip="")}

# $1 account, $2 key, $3 expired before. Run only when a create's key collided: an expired key is
# dropped so that the create can take the name over; zero rows means the key is live.
FORGET_EXPIRED_KEY = "DELETE FROM idempotency_keys WHERE account_id = $1 AND key = $2 AND created_at < $3"

# $1 types, $2 limit, $3 owner, $4 lease expiry, $5 now, $6 in-flight cap per account (0: none),
# $7 the accounts a pool is limited to (NULL: any account's tasks).
#
# Fair: round robin between accounts, so one account's backlog never delays another's next task.
# `owners` lists the accounts with pending tasks by a skip scan of ix_tasks_pending_account (one
# index probe per account, whatever their backlogs); `candidates` takes, per account, its oldest
# matching tasks, no more than the claim's limit nor than the room left under the cap, ranked
# after the account's running tasks: an account with k in flight offers ranks k+1, k+2... The
# pick goes by rank, then age: the task of the account with the fewest in flight comes first,
# even in a claim of one (a busy worker frees one slot at a time, and ranking by age inside the
# claim alone would hand every freed slot back to the oldest backlog). Reads are bounded by
# accounts x limit, never by the size of the backlog. Running tasks count among the claim's types
# (a lane's family: the OCR lane's slots are its own, so an account's proof of work must not
# spend its OCR share, nor its OCR the proof-of-work share).
#
# The pick keeps the one SKIP LOCKED form (units.skip_locked_pick): MATERIALIZED, so it runs once
# (as a plain subquery the planner may rerun it per row, and LIMIT then takes more than $2 rows);
# SKIP LOCKED: concurrent claimers take disjoint rows instead of queueing on one another. Window
# functions cannot sit beside FOR UPDATE, hence the ranks in their own CTE; `queue` hands them to
# the pick as one ordered array, so that the planner, which cannot estimate the per-account
# LIMITs and would guess thousands of candidates, probes the primary key per candidate instead
# of hashing the whole pending set (EXPLAIN ANALYZE, 100k pending rows of 5 accounts: 84 ms as a
# join on c.id = t.id, 2.5 ms this way, every step an index probe).
#
# The claim commits without waiting for its WAL to reach the disk (`synchronous_commit` off for
# this transaction alone, set inside the statement: no extra round trip). A lease is the one write
# whose loss costs nothing: if the server crashes before the WAL writer flushes it (within
# `wal_writer_delay`), the task is pending again at its previous attempt, as after an expired lease,
# and the worker's completion is fenced out by that attempt. Every later durable commit (the
# completion's, a create's) flushes the WAL up to itself, this lease included. Creates and ends keep
# waiting for the disk: a client is told of a task, or charged for it, only once it is durable.
# Claims were about half of the commits that waited for a flush (bench/RESULTS.md).
#
# The cap is exact for claims that do not overlap: the running count is read in this statement's
# snapshot, so claims running at the same moment do not see one another's picks, and each may
# take the account up to the cap: at worst cap x (overlapping claims). See docs/architecture.md.
_CLAIM = f"""
WITH RECURSIVE owners AS (
    (SELECT account_id FROM tasks WHERE status = '{_PENDING}' ORDER BY account_id LIMIT 1)
    UNION ALL
    SELECT (SELECT t.account_id FROM tasks t
            WHERE t.status = '{_PENDING}' AND t.account_id > o.account_id ORDER BY t.account_id LIMIT 1)
    FROM owners o WHERE o.account_id IS NOT NULL
), running AS (
    SELECT account_id, count(*) AS n FROM tasks WHERE status = '{_RUNNING}' AND type = ANY($1::text[])
    GROUP BY account_id
), candidates AS (
    SELECT c.id, c.created_at, c.rank
    FROM owners o
    LEFT JOIN running r ON r.account_id = o.account_id
    CROSS JOIN LATERAL (
        SELECT t.id, t.created_at, coalesce(r.n, 0) + row_number() OVER (ORDER BY t.created_at) AS rank
        FROM tasks t
        WHERE t.account_id = o.account_id AND t.status = '{_PENDING}' AND t.type = ANY($1::text[]) {{builtin}}
          AND ($7::text[] IS NULL OR t.account_id = ANY($7::text[]))
        ORDER BY t.created_at
        LIMIT CASE WHEN $6::int = 0 THEN $2::int ELSE least($2::int, greatest($6::int - coalesce(r.n, 0), 0)) END
    ) c
), queue AS MATERIALIZED (
    SELECT array_agg(id ORDER BY rank, created_at) AS ids,
           set_config('synchronous_commit', 'off', true) AS commit_mode
    FROM candidates
), picked AS MATERIALIZED (
    SELECT t.id FROM queue q JOIN tasks t ON t.id = ANY (q.ids)
    WHERE t.status = '{_PENDING}'
    ORDER BY array_position(q.ids, t.id)
    LIMIT $2
    FOR UPDATE OF t SKIP LOCKED
)
UPDATE tasks SET status = '{_RUNNING}', lease_owner = $3, lease_expires_at = $4,
                 started_at = coalesce(started_at, $5), attempts = attempts + 1
WHERE id IN (SELECT id FROM picked) AND status = '{_PENDING}'
RETURNING {_COLUMNS}
"""  # noqa: S608
CLAIM = {True: _CLAIM.format(builtin="AND NOT t.pool_only"), False: _CLAIM.format(builtin="")}

# The one place on PostgreSQL where tasks end. $1 ids, $2 lease owners, $3 attempts, $4 solutions,
# $5 webhook delivery ids (one per task); $6 terminal status, $7 error code, $8 error message,
# $9 capture (true: the account keeps paying the held price; false: it is released), $10 now.
#
# Fenced (completions, a worker's rejection): only while the lease holds (running, same owner,
# same attempt). Unfenced (a client's cancel, a deadline): any live task. The accounts are settled
# with one UPDATE per account, locked in id order (two batches lock shared accounts in the same
# order, so they never deadlock), and the ledger's unique (task, kind) refuses a second settlement.
_END = f"""
WITH batch AS (
    SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::text[], $5::text[])
        AS b(id, owner, attempt, solution, delivery_id)
), done AS (
    UPDATE tasks t SET status = $6, solution = b.solution, error_code = $7, error_message = $8,
                       cost = CASE WHEN $9::boolean THEN t.price ELSE 0 END, completed_at = $10,
                       lease_owner = NULL, lease_expires_at = NULL
    FROM batch b
    WHERE t.id = b.id AND {{fence}}
    RETURNING {_T_COLUMNS}, b.delivery_id
), owed AS (
    SELECT account_id, sum(price) AS amount FROM done GROUP BY account_id
), locked AS (
    SELECT a.id, o.amount FROM accounts a JOIN owed o ON o.account_id = a.id ORDER BY a.id FOR UPDATE OF a
), settled AS (
    UPDATE accounts a SET held = a.held - l.amount,
                          available = a.available + CASE WHEN $9::boolean THEN 0 ELSE l.amount END
    FROM locked l WHERE a.id = l.id
), entries AS (
    INSERT INTO ledger (account_id, task_id, kind, available_delta, held_delta, created_at)
    SELECT account_id, id, CASE WHEN $9::boolean THEN 'capture' ELSE 'release' END,
           CASE WHEN $9::boolean THEN 0 ELSE price END, -price, $10
    FROM done
), deliveries AS (
    INSERT INTO webhook_deliveries (id, task_id, account_id, url, status, attempts, next_attempt_at, created_at)
    SELECT delivery_id, id, account_id, callback_url, 'pending', 0, $10, $10 FROM done
    WHERE callback_url IS NOT NULL
)
SELECT {_COLUMNS} FROM done
"""  # noqa: S608
END = {
    True: _END.format(fence=f"t.status = '{_RUNNING}' AND t.lease_owner = b.owner AND t.attempts = b.attempt"),
    False: _END.format(fence=f"t.status IN ('{_PENDING}', '{_RUNNING}')"),
}

# $1 now, $2 limit. Unlocked: the end statement that follows re-checks that each task is live, so
# two reapers that pick the same ids end each task once (the second finds it ended and skips it).
OVERDUE = f"""
SELECT id FROM tasks WHERE status IN ('{_PENDING}', '{_RUNNING}') AND deadline_at < $1
ORDER BY deadline_at LIMIT $2
"""  # noqa: S608

VIEW = f"SELECT {', '.join(VIEW_COLUMNS)} FROM tasks WHERE id = $1"  # noqa: S608
