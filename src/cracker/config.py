"""Settings from the environment (prefix ``CRACKER_``), with the defaults of a one-command start."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from cracker.domain.callbacks import CallbackPolicy
from cracker.domain.reports import RefundPolicy


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRACKER_", extra="ignore")

    database_url: str = "sqlite:///./var/cracker.db"
    #: Log lines as JSON objects (one per line, for a log collector) or as plain text for a
    #: terminal; ``--log-format`` on serve and worker overrides it. Fields: docs/operations.md.
    log_format: Literal["json", "text"] = "json"
    #: Base of every error's ``doc_url``; empty means "this server, as the request reached it".
    docs_base_url: str = ""
    #: Where the captcha-vendor protocols (docs/protocols.md) are served besides the root, e.g.
    #: ``/compat``; empty: at the root only.
    protocol_prefix: str = Field(default="", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    #: Requests per second per account, all its keys together (token bucket refill), for the whole
    #: service; 0 turns rate limiting off. Buckets live in each API process's memory: each process
    #: enforces its share, ``1 / api_processes`` of this rate and burst (docs/operations.md).
    rate_limit_per_s: float = Field(default=50.0, ge=0)
    #: Bucket size: the burst an account may send at once (for the whole service, like the rate).
    rate_limit_burst: int = Field(default=100, ge=1)
    #: API processes behind the load balancer: each enforces 1/N of the per-account and
    #: per-address limits, so that N processes together enforce the settings. The balancer must
    #: spread requests evenly (round robin, least connections); a client pinned to one process
    #: gets 1/N of its limit.
    api_processes: int = Field(default=1, ge=1)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    #: A task not solved this many seconds after creation is rejected with ``solve_timeout``.
    task_timeout_s: float = Field(default=120.0, gt=0)
    #: Run the built-in solvers inside the API process.
    in_process_workers: bool = True
    #: Tasks the in-process worker solves at once.
    worker_concurrency: int = Field(default=8, ge=1)
    #: image-to-text tasks a built-in worker solves at once, in slots of their own that proof of
    #: work cannot take (see ``cracker.worker.lanes``).
    ocr_worker_concurrency: int = Field(default=8, ge=1)
    #: Tasks one account may have running at once in each worker lane (the types one claim asks
    #: for: proof of work, OCR, a pool's types); 0: no cap. Workers claim round robin between
    #: accounts; this cap also keeps one account's long solves from holding every slot. Exact on
    #: SQLite; on PostgreSQL claims at the same moment may each fill it (docs/architecture.md).
    max_running_per_account: int = Field(default=8, ge=0)
    #: Processes for CPU-heavy solving; 0 means one per core.
    cpu_workers: int = Field(default=0, ge=0)
    #: Read doubtful OCR readings again in four more views that vote: about 1 point of accuracy on
    #: the training generators and 2 to 4 on unseen styles, for 2.5x less batched throughput.
    ocr_second_look: bool = True
    #: Requests per second per client address that carry no valid key (public routes such as
    #: /metrics, /openapi.json, /v2/offers and /errors/*, and every request whose key is missing,
    #: unknown or of the wrong scope); 0 turns this limit off. IPv6 clients count per /64. Behind a
    #: reverse proxy every client has the proxy's address: raise this, or limit at the proxy.
    address_rate_limit_per_s: float = Field(default=5.0, ge=0)
    #: How long a dashboard sign-in lasts (the session's cookie and its row).
    dashboard_session_ttl_s: float = Field(default=8 * 3600.0, gt=0)
    #: How often each API process samples the queue (queued and running tasks per type) for the
    #: operator's charts; 0 samples nothing. One row per (slot, type) whichever process writes it.
    queue_sample_interval_s: float = Field(default=60.0, ge=0)
    #: Queue samples are deleted this long after they were taken; 0 keeps them.
    queue_sample_retention_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    #: Failed dashboard sign-ins per second one client address may make (token bucket refill).
    dashboard_signin_rate_per_s: float = Field(default=0.2, ge=0)
    #: ... and the burst of failures it may make at once.
    dashboard_signin_burst: int = Field(default=5, ge=1)
    #: Bucket size of the per-address limit: the burst of such requests one address may send.
    address_rate_limit_burst: int = Field(default=60, ge=1)
    #: Long-polls (``GET /v2/tasks/{id}?wait=``) one account may hold open at once, per process.
    max_long_polls_per_account: int = Field(default=100, ge=1)
    #: Active API keys one account may hold (every scope); 0: no limit.
    max_api_keys_per_account: int = Field(default=20, ge=0)
    #: How long an authenticated key is trusted without asking the database again (revocation delay).
    auth_cache_s: float = Field(default=5.0, ge=0)
    #: How long a SQLite writer waits for the file lock before answering service_unavailable.
    sqlite_busy_timeout_ms: int = Field(default=5_000, ge=0)
    #: PostgreSQL: the most a process waits to open a connection, for a pooled connection, and for
    #: one statement (0: no statement bound). Past any of them the request is answered 503
    #: ``service_unavailable`` (retryable), so no request outlives a database that is gone.
    database_connect_timeout_s: float = Field(default=5.0, gt=0)
    database_pool_timeout_s: float = Field(default=5.0, gt=0)
    database_statement_timeout_s: float = Field(default=30.0, ge=0)
    #: After a webhook secret rotation, how long the old secret keeps signing beside the new one
    #: (a client may ask for any overlap from 0 to 7 days).
    webhook_secret_overlap_s: float = Field(default=24 * 3600.0, ge=0, le=7 * 24 * 3600.0)
    #: Let callback URLs reach loopback, private, link-local and metadata addresses (tests, labs).
    webhook_allow_private: bool = False
    #: How often the webhook dispatcher looks for due deliveries.
    webhook_poll_s: float = Field(default=0.5, gt=0)
    #: Ports callback URLs may use (JSON list in the environment: ``[80, 443, 8443]``).
    webhook_allowed_ports: list[Annotated[int, Field(ge=1, le=65535)]] = Field(default_factory=lambda: [80, 443])
    #: Let callback URLs use any port (tests, labs); ``webhook_allowed_ports`` is then ignored.
    webhook_allow_any_port: bool = False
    #: The most one delivery attempt may take, connection, request and answer together: a
    #: receiver that answers slowly (or trickles its body) loses the attempt, not everyone's time.
    webhook_timeout_s: float = Field(default=10.0, gt=0, le=300)
    #: Deliveries in flight at once in this process (each holds one slot until it ends).
    webhook_concurrency: int = Field(default=32, ge=1)
    #: Deliveries of one account in flight at once, so that one account's slow receivers cannot
    #: take every slot.
    webhook_account_concurrency: int = Field(default=4, ge=1)
    #: The receiver's answer body is read up to this many bytes and the rest discarded.
    webhook_max_response_bytes: int = Field(default=4096, ge=0)
    #: Multiplies the webhook retry delays (5 s, 15 s, 1 min ... 1 h); below 1 only for tests.
    webhook_backoff_scale: float = Field(default=1.0, gt=0)
    #: This server's public base URL, for links in webhook bodies (doc_url) when docs_base_url is unset.
    public_url: str = "http://127.0.0.1:8000"
    #: Finished tasks are deleted this long after they ended (their ledger rows stay); 0 keeps them.
    task_retention_s: float = Field(default=7 * 24 * 3600.0, ge=0)
    #: A client may report a completed task's answer this long after it completed. Ten minutes:
    #: a client learns that an answer was wrong when it submits it, seconds later; a short window
    #: keeps reports about answers just given (and the image still at hand, see task_retention_s).
    report_window_s: float = Field(default=600.0, gt=0)
    #: Incorrect reports of a task type are refunded up to this share of the account's completed
    #: tasks of that type over ``report_share_period_s`` (floor); beyond it a report is recorded,
    #: not refunded. 0.15: nearly twice the general OCR model's error rate on the styles it knows
    #: (about 8 %), so honest reports are refunded, while reporting everything wrong recovers
    #: at most 15 % of the spend.
    report_refund_share: float = Field(default=0.15, ge=0, le=1)
    #: The period the refund share counts over: a day smooths a burst of wrong answers (a site
    #: changed its style) over the day's tasks.
    report_share_period_s: float = Field(default=24 * 3600.0, gt=0)
    #: Reports (with their labelled images, a fine-tuning set) are deleted this long after they
    #: were made, never before the share period ends; 0 keeps them. Their refunds stay in the ledger.
    report_retention_s: float = Field(default=30 * 24 * 3600.0, ge=0)
    #: How often the reaper looks for tasks past their deadline.
    reaper_interval_s: float = Field(default=0.5, gt=0)
    #: A worker's lease on a task (and its registration) lasts this long without a heartbeat;
    #: workers heartbeat every third of it. A task whose worker died is back in the queue this
    #: long after the worker's last heartbeat (plus at most one reaper interval).
    lease_s: float = Field(default=10.0, ge=1)
    #: Leases a task may be granted; when the last one expires too, the task is rejected ``worker_lost``.
    max_attempts: int = Field(default=3, ge=1)
    #: How often an API process re-reads which task types have live workers (per-type capacity).
    capacity_refresh_s: float = Field(default=1.0, gt=0)


def callback_policy(settings: Settings) -> CallbackPolicy:
    """Where webhooks may go, as the operator set it."""
    ports = None if settings.webhook_allow_any_port else frozenset(settings.webhook_allowed_ports)
    return CallbackPolicy(allow_private=settings.webhook_allow_private, allowed_ports=ports)


def refund_policy(settings: Settings) -> RefundPolicy:
    """The operator's limits on reports and refunds."""
    return RefundPolicy(
        window_s=settings.report_window_s, share=settings.report_refund_share,
        period_s=settings.report_share_period_s,
    )
