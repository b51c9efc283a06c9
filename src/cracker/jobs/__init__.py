"""Background jobs, run by every process that ``runtime.build_runtime`` builds: the reaper
(deadlines, expired leases), retention (finished tasks, old idempotency keys, dead workers) and,
in API processes, the webhook dispatcher (the outbox's deliveries)."""

from cracker.jobs.periodic import PeriodicJob
from cracker.jobs.reaper import Reaper
from cracker.jobs.retention import Retention
from cracker.jobs.webhooks import WebhookDispatcher

__all__ = ["PeriodicJob", "Reaper", "Retention", "WebhookDispatcher"]
