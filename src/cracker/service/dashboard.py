"""Use cases of the web dashboard: sessions signed in with an API key, and the figures its views show.

The session's token lives only in the browser's cookie; the database keeps its SHA-256, so a copy of
the database signs nobody in. A session belongs to the key it signed in with: revoking the key ends
it at the next request.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from cracker.domain.accounts import ApiKeyRecord
from cracker.domain.clock import now
from cracker.domain.dashboard import AccountRow, BucketCount, DashboardSession, LedgerRow, QueuePeak, TaskRow
from cracker.domain.workers import WorkerInfo
from cracker.store import Reader, Store, Writer, leases
from cracker.store import dashboard as sql

#: The most rows one page of the ledger or the task list shows (and the CSV export holds).
PAGE_LIMIT = 200
CSV_LIMIT = 100_000
#: Latency percentiles come from the latest this many solved tasks of the window.
LATENCY_SAMPLE = 20_000


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class NewSession:
    #: The cookie's value: shown once, to the browser.
    token: str
    session: DashboardSession


@dataclass(frozen=True, slots=True)
class Series:
    """One chart: buckets (start times) and, per series name, a value per bucket."""

    buckets: list[float]
    values: dict[str, list[float]]


@dataclass(slots=True)
class TypeStats:
    """The operator's figures of one task type over the window."""

    type: str
    pending: int = 0
    running: int = 0
    solved: int = 0
    rejected: int = 0
    p50_s: float | None = None
    p95_s: float | None = None
    p99_s: float | None = None

    @property
    def success_rate(self) -> float | None:
        ended = self.solved + self.rejected
        return self.solved / ended if ended else None


@dataclass(slots=True)
class OperatorOverview:
    types: list[TypeStats]
    #: Per hour: solved per type, rejected per type, p95 latency per type.
    solved: Series
    rejected: Series
    p95: Series
    errors: list[tuple[str, int]]
    workers: list[WorkerInfo]
    #: Per hour, from the queue samples: the most tasks queued, and running, per type.
    queued: Series = field(default_factory=lambda: Series([], {}))
    running: Series = field(default_factory=lambda: Series([], {}))
    window_s: int = field(default=86_400)


def _percentile(ordered: Sequence[float], q: float) -> float | None:
    if not ordered:
        return None
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _buckets(since: float, until: float, bucket_s: int) -> list[float]:
    first = math.floor(since / bucket_s) * bucket_s
    return [float(t) for t in range(int(first), int(until) + 1, bucket_s)]


class DashboardService:
    def __init__(self, store: Store, *, session_ttl_s: float) -> None:
        self._store = store
        self._ttl_s = session_ttl_s

    # --- sessions -----------------------------------------------------------------------------

    async def sign_in(self, key: ApiKeyRecord) -> NewSession:
        """A new session for a key already authenticated; expired sessions are swept meanwhile."""
        token = secrets.token_urlsafe(32)
        at = now()
        session = DashboardSession(key.id, key.account_id, key.scope, secrets.token_urlsafe(32), at + self._ttl_s)

        def work(tx: Writer) -> None:
            sql.delete_expired_sessions(tx, at)
            sql.insert_session(
                tx, token_hash(token), key.id, key.account_id, key.scope, session.csrf_token, at, session.expires_at
            )

        await self._store.write(work)
        return NewSession(token, session)

    async def session(self, token: str) -> DashboardSession | None:
        at = now()
        return await self._store.read(lambda r: sql.get_session(r, token_hash(token), at))

    async def sign_out(self, token: str) -> None:
        await self._store.write(lambda tx: sql.delete_session(tx, token_hash(token)))

    # --- an account's views -------------------------------------------------------------------

    async def ledger(
        self, account_id: str, *, kind: str | None = None, since: float | None = None, until: float | None = None,
        before_id: int | None = None, limit: int = PAGE_LIMIT,
    ) -> list[LedgerRow]:
        return await self._store.read(lambda r: sql.ledger_page(
            r, account_id, kind=kind, since=since, until=until, before_id=before_id, limit=limit
        ))

    async def tasks(
        self, account_id: str, *, task_type: str | None = None, status: str | None = None,
        since: float | None = None, until: float | None = None, limit: int = PAGE_LIMIT,
        before: tuple[float, str] | None = None,
    ) -> list[TaskRow]:
        """A page of the account's tasks, newest first; ``before``: (created at, id) of the last row
        of the previous page."""
        return await self._store.read(lambda r: sql.tasks_page(
            r, account_id, task_type=task_type, status=status, since=since, until=until, limit=limit, before=before
        ))

    async def task_rows(self, account_id: str, task_ids: Sequence[str]) -> list[TaskRow]:
        ids = list(task_ids)[:PAGE_LIMIT]
        return await self._store.read(lambda r: sql.task_rows(r, account_id, ids))

    async def account_charts(self, account_id: str, *, window_s: int, bucket_s: int) -> tuple[Series, Series]:
        """(spend in USD units per bucket, solved and rejected tasks per bucket) over the window."""
        until = now()
        since = until - window_s
        rows = await self._store.read(lambda r: sql.bucket_counts(r, since, bucket_s, account_id=account_id))
        buckets = _buckets(since, until, bucket_s)
        index = {b: i for i, b in enumerate(buckets)}
        spend = [0.0] * len(buckets)
        solved = [0.0] * len(buckets)
        rejected = [0.0] * len(buckets)
        for row in rows:
            i = index.get(row.bucket)
            if i is None:
                continue
            spend[i] += row.cost
            if row.status == "completed":
                solved[i] += row.count
            elif row.status == "rejected":
                rejected[i] += row.count
        return Series(buckets, {"spend": spend}), Series(buckets, {"solved": solved, "rejected": rejected})

    # --- the operator's views -----------------------------------------------------------------

    async def operator_overview(self, queue_depths: dict[tuple[str, str], int], *, window_s: int = 86_400,
                                bucket_s: int = 3600) -> OperatorOverview:
        """Per type over the window: what is queued and running now (``queue_depths``, the same
        figures /metrics exports), solved and rejected, latency percentiles; per bucket the same
        as series; the error catalogue's counts; the live workers."""
        until = now()
        since = until - window_s

        def read(r: Reader) -> tuple[
            list[BucketCount], list[tuple[str, float, float]], list[WorkerInfo], list[QueuePeak]
        ]:
            return (sql.bucket_counts(r, since, bucket_s), sql.recent_latencies(r, since, LATENCY_SAMPLE),
                    leases.live_workers(r, until), sql.queue_peaks(r, since, bucket_s))

        counts, latencies, workers, peaks = await self._store.read(read)
        error_counts: dict[str, int] = defaultdict(int)
        stats: dict[str, TypeStats] = {}
        for (task_type, status), n in queue_depths.items():
            entry = stats.setdefault(task_type, TypeStats(task_type))
            if status == "pending":
                entry.pending += n
            elif status == "running":
                entry.running += n
        buckets = _buckets(since, until, bucket_s)
        index = {b: i for i, b in enumerate(buckets)}
        solved: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
        rejected: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
        for row in counts:
            entry = stats.setdefault(row.type, TypeStats(row.type))
            i = index.get(row.bucket)
            if row.status == "completed":
                entry.solved += row.count
                if i is not None:
                    solved[row.type][i] += row.count
            elif row.status == "rejected":
                entry.rejected += row.count
                error_counts[row.error_code or "unknown"] += row.count
                if i is not None:
                    rejected[row.type][i] += row.count
        errors = sorted(error_counts.items(), key=lambda item: (-item[1], item[0]))
        per_type: dict[str, list[float]] = defaultdict(list)
        per_bucket: dict[tuple[str, float], list[float]] = defaultdict(list)
        for task_type, created_at, latency in latencies:
            per_type[task_type].append(latency)
            per_bucket[(task_type, math.floor(created_at / bucket_s) * bucket_s)].append(latency)
        for task_type, values in per_type.items():
            values.sort()
            entry = stats.setdefault(task_type, TypeStats(task_type))
            entry.p50_s, entry.p95_s, entry.p99_s = (_percentile(values, q) for q in (0.5, 0.95, 0.99))
        p95: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
        for (task_type, bucket), values in per_bucket.items():
            i = index.get(float(bucket))
            if i is not None:
                p95[task_type][i] = _percentile(sorted(values), 0.95) or 0.0
        queued: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
        running: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(buckets))
        for peak in peaks:
            i = index.get(peak.bucket)
            if i is not None:
                queued[peak.type][i] = float(peak.pending)
                running[peak.type][i] = float(peak.running)
        return OperatorOverview(
            types=sorted(stats.values(), key=lambda s: s.type),
            solved=Series(buckets, dict(solved)), rejected=Series(buckets, dict(rejected)),
            p95=Series(buckets, dict(p95)), errors=errors, workers=workers, window_s=window_s,
            queued=Series(buckets, dict(queued)), running=Series(buckets, dict(running)),
        )

    async def sample_queues(self, interval_s: float) -> int:
        """Record what is queued and running per type now, in the current slot of ``interval_s``
        (a slot another API process sampled already keeps its row). Returns the rows written."""
        at = now()
        slot = math.floor(at / interval_s) * interval_s

        def work(tx: Writer) -> int:
            return sql.insert_queue_samples(tx, slot, tx.queue_depths())

        return await self._store.write(work)

    async def purge_queue_samples(self, retention_s: float) -> int:
        """Delete the samples older than ``retention_s``; 0 keeps them."""
        if retention_s <= 0:
            return 0
        before = now() - retention_s
        return await self._store.write(lambda tx: sql.purge_queue_samples(tx, before))

    async def accounts(
        self, *, search: str | None = None, limit: int = PAGE_LIMIT, before: tuple[float, str] | None = None
    ) -> list[AccountRow]:
        """A page of accounts, newest first; ``before``: (created at, id) of the previous page's last."""
        return await self._store.read(lambda r: sql.account_rows(r, search=search, limit=limit, before=before))

