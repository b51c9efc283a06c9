"""Background jobs, run by every process that ``runtime.build_runtime`` builds: the reaper
(deadlines, expired leases), retention (finished tasks, old idempotency keys, dead workers, old
queue samples) and, in API processes, the queue sampler and the webhook dispatcher (the outbox's
deliveries)."""

from cracker.jobs.periodic import PeriodicJob
from cracker.jobs.queue_sampler import QueueSampler
from cracker.jobs.reaper import Reaper
from cracker.jobs.retention import Retention
from cracker.jobs.webhooks import WebhookDispatcher

__all__ = ["PeriodicJob", "QueueSampler", "Reaper", "Retention", "WebhookDispatcher"]
