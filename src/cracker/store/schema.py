"""The relational schema, shared by SQLite and PostgreSQL. Migrations create exactly this.

Money columns are integer units of 0.0001 USD (see ``cracker.domain.money``); times are float epoch
seconds; JSON is stored as text so that both databases read it the same way.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False),
    # A projection of the ledger kept in the same transaction as every ledger row, so that the
    # spend check is one conditional UPDATE; the CHECKs make a negative balance impossible even
    # for a buggy caller.
    Column("available", BigInteger, nullable=False, server_default="0"),
    Column("held", BigInteger, nullable=False, server_default="0"),
    Column("created_at", Float, nullable=False),
    # Signs this account's webhooks (HMAC-SHA256); made on first use.
    Column("webhook_secret", String(64), nullable=True),
    # After a rotation the old secret signs beside the new one until this time, so receivers can
    # switch without dropping a delivery.
    Column("webhook_secret_previous", String(64), nullable=True),
    Column("webhook_secret_previous_until", Float, nullable=True),
    CheckConstraint("available >= 0", name="ck_accounts_available_nonnegative"),
    CheckConstraint("held >= 0", name="ck_accounts_held_nonnegative"),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    # SHA-256 of the key: keys are 256-bit random strings, so a fast hash is as strong as a slow one.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
)
# Listing an account's keys (operators, the dashboard) reads by account.
Index("ix_api_keys_account", api_keys.c.account_id)

offers = Table(
    "offers",
    metadata,
    Column("type", String(40), primary_key=True),
    Column("price", BigInteger, nullable=False),
    Column("enabled", Boolean, nullable=False, server_default="1"),
    Column("updated_at", Float, nullable=False),
    CheckConstraint("price >= 0", name="ck_offers_price_nonnegative"),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("type", String(40), nullable=False),
    Column("status", String(16), nullable=False),
    Column("params", Text, nullable=False),
    Column("solution", Text, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("price", BigInteger, nullable=False),
    Column("cost", BigInteger, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("completed_at", Float, nullable=True),
    Column("deadline_at", Float, nullable=False),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", Float, nullable=True),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("callback_url", Text, nullable=True),
    # True when no built-in solver accepts the task: only an attached worker pool may lease it.
    Column("pool_only", Boolean, nullable=False, server_default=false()),
    # The task's number for the captcha-vendor protocols, whose clients parse integer task ids
    # (docs/protocols.md): assigned once at insert, never changed, unique; the UUID stays the id.
    Column("number", BigInteger, nullable=True),
)
# Live tasks by status and type: the metrics' queue depths, the claim's running counts per type.
Index("ix_tasks_claim", tasks.c.status, tasks.c.type, tasks.c.created_at)
# The reaper finds live tasks past their deadline.
Index("ix_tasks_deadline", tasks.c.status, tasks.c.deadline_at)
Index("ix_tasks_account", tasks.c.account_id, tasks.c.created_at)
# The fair claim walks the accounts that have pending tasks, then each one's oldest (0007).
Index(
    "ix_tasks_pending_account", tasks.c.account_id, tasks.c.created_at,
    postgresql_where=tasks.c.status == "pending", sqlite_where=tasks.c.status == "pending",
)

# The dashboard's last-day figures read only the last day's tasks (0008).
Index("ix_tasks_created", tasks.c.created_at)
# The protocols look a task up by its number (0012).
Index("ix_tasks_number", tasks.c.number, unique=True)

ledger = Table(
    "ledger",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("task_id", String(36), nullable=True),
    # topup | hold | capture | release | refund (a completed task reported wrong, see task_reports)
    Column("kind", String(16), nullable=False),
    Column("available_delta", BigInteger, nullable=False),
    Column("held_delta", BigInteger, nullable=False),
    Column("created_at", Float, nullable=False),
    # Why an operator topped the account up (the dashboard asks for a reason); null otherwise.
    Column("note", Text, nullable=True),
    # A task is held, then captured or released, each at most once: the database refuses a
    # second capture even if two workers race past the lease fence.
    UniqueConstraint("task_id", "kind", name="uq_ledger_task_kind"),
)
# The dashboard's ledger pages, newest first (0008), and every other read of an account's ledger:
# the index on account_id alone was dropped as redundant (0014).
Index("ix_ledger_account_id", ledger.c.account_id, ledger.c.id)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("account_id", String(36), ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    # SHA-256 of the create request (type and body): the same key with another body is refused.
    Column("request_hash", String(64), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_idempotency_created", idempotency_keys.c.created_at)

# A batch create's Idempotency-Key, with the batch's whole answer: per item the task it created or
# the error it got, so a retry answers the same items the same way (never a second charge).
batch_keys = Table(
    "batch_keys",
    metadata,
    Column("account_id", String(36), ForeignKey("accounts.id"), primary_key=True),
    Column("key", String(255), primary_key=True),
    Column("request_hash", String(64), nullable=False),
    # JSON: one entry per item, {"task_id": ...} or {"error": {"code", "message", "details"}}.
    Column("outcome", Text, nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_batch_keys_created", batch_keys.c.created_at)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("task_id", String(36), nullable=False),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("url", Text, nullable=False),
    # pending | delivered | failed
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("lease_until", Float, nullable=True),
)
Index("ix_webhook_deliveries_due", webhook_deliveries.c.status, webhook_deliveries.c.next_attempt_at)
Index("ix_webhook_deliveries_task", webhook_deliveries.c.task_id)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False),
    Column("task_id", String(36), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("at", Float, nullable=False),
    Column("status_code", Integer, nullable=True),
    Column("error", Text, nullable=True),
    Column("duration_ms", Integer, nullable=False),
)
Index("ix_webhook_attempts_task", webhook_attempts.c.task_id)

workers = Table(
    "workers",
    metadata,
    # The lease owner its tasks carry: a remote pool's id, or host:suffix of a built-in worker.
    Column("id", String(64), primary_key=True),
    # builtin (a `cracker worker` process or a server's in-process worker) | remote (a pool over HTTP)
    Column("kind", String(16), nullable=False),
    # The account of the worker key a remote pool registered with; null for built-in workers.
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=True),
    Column("name", String(200), nullable=False),
    # JSON list of the task types it serves.
    Column("types", Text, nullable=False),
    Column("concurrency", Integer, nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
    # Live while expires_at is in the future: every heartbeat pushes it one lease further.
    Column("expires_at", Float, nullable=False),
)
Index("ix_workers_expires", workers.c.expires_at)

pool_grants = Table(
    "pool_grants",
    metadata,
    # The account whose worker keys the grant covers. Without a row its pools serve only the
    # types no built-in solver covers: a built-in type's tasks carry other accounts' images and
    # proof-of-work challenges, which no pool needs to see unless an operator says so.
    Column("account_id", String(36), ForeignKey("accounts.id"), primary_key=True),
    # Every task type, present and future.
    Column("all_types", Boolean, nullable=False, server_default=false()),
    # JSON list of the further task types allowed.
    Column("types", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
)

task_events = Table(
    "task_events",
    metadata,
    # What a remote pool did to a task (leased, completed, rejected), for operators: which pool
    # and which account's worker key saw a task's parameters and decided its outcome.
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("task_id", String(36), nullable=False),
    Column("at", Float, nullable=False),
    # leased | completed | rejected
    Column("event", String(16), nullable=False),
    Column("worker_id", String(64), nullable=False),
    # A snapshot: the registry forgets a worker an hour after its last heartbeat.
    Column("worker_name", String(200), nullable=False),
    Column("pool_account_id", String(36), nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("error_code", String(64), nullable=True),
)
Index("ix_task_events_task", task_events.c.task_id, task_events.c.id)

pool_accounts = Table(
    "pool_accounts",
    metadata,
    # An operator's limit: the pools of pool_account_id lease only tasks of these accounts. No row
    # for a pool account: its pools lease any account's tasks (of the types they may serve).
    Column("pool_account_id", String(36), ForeignKey("accounts.id"), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), primary_key=True),
)

task_reports = Table(
    "task_reports",
    metadata,
    # One report per task: the primary key refuses a second one, also under concurrency.
    Column("task_id", String(36), primary_key=True),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("task_type", String(40), nullable=False),
    # The OCR model that answered (image-to-text's ``model`` field; ``general`` without one):
    # the model these labelled images train.
    Column("model", String(64), nullable=False),
    # The task's image, copied: retention deletes the task (and its params) long before a
    # fine-tuning run may read this row. Null for types without an image.
    Column("image", LargeBinary, nullable=True),
    # The answer given (the solution's token) and, on an incorrect report, the right one if sent.
    Column("answer", Text, nullable=False),
    Column("expected", Text, nullable=True),
    Column("correct", Boolean, nullable=False),
    # Units refunded (the task's cost), 0 when not refunded; refund_refused says why not.
    Column("refund", BigInteger, nullable=False),
    Column("refund_refused", String(32), nullable=True),
    Column("created_at", Float, nullable=False),
)
# The refund share counts an account's refunded reports of a type over the recent period.
Index("ix_task_reports_account", task_reports.c.account_id, task_reports.c.task_type, task_reports.c.created_at)
# A model's labelled images, newest first; and retention's purge by age.
Index("ix_task_reports_model", task_reports.c.model, task_reports.c.created_at)


dashboard_sessions = Table(
    "dashboard_sessions",
    metadata,
    # SHA-256 of the cookie's token: a copy of the database does not sign anyone in.
    Column("token_hash", String(64), primary_key=True),
    # Signing in with a key makes a session of that key: revoking the key ends its sessions.
    Column("key_id", String(36), ForeignKey("api_keys.id"), nullable=False),
    Column("account_id", String(36), ForeignKey("accounts.id"), nullable=False),
    Column("scope", String(16), nullable=False),
    # The synchronizer token every form of the session carries back (CSRF).
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("ix_dashboard_sessions_expires", dashboard_sessions.c.expires_at)


ocr_models = Table(
    "ocr_models",
    metadata,
    # Named recognition models (cracker ocr-models add). The weights live in the row, not beside the
    # database: every API and worker process of a PostgreSQL deployment, on any machine, loads
    # them from here (a few MB each, read once per process per model).
    Column("name", String(64), primary_key=True),
    Column("onnx", LargeBinary, nullable=False),
    # The torch weights, for a later fine-tune that starts from this model.
    Column("checkpoint", LargeBinary, nullable=True),
    # model.json (alphabet, input size, how it was trained) as JSON text.
    Column("metadata", Text, nullable=False),
    Column("base", String(64), nullable=False),
    Column("score", Float, nullable=False),
    Column("base_score", Float, nullable=False),
    Column("held_out", Integer, nullable=False),
    Column("trained_on", Integer, nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
)


queue_samples = Table(
    "queue_samples",
    metadata,
    # The start of the sampling slot (a multiple of the sampling interval): every API process may
    # sample, the first row of a (slot, type) wins and the others' inserts do nothing.
    Column("sampled_at", Float, primary_key=True),
    Column("type", String(64), primary_key=True),
    Column("pending", Integer, nullable=False),
    Column("running", Integer, nullable=False),
)
