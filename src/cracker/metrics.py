"""Prometheus series: the per-task-type health of the service."""

from __future__ import annotations

from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

#: Solve latency buckets (seconds): proof of work finishes in milliseconds, token pools in tens of seconds.
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120, 300)


M = TypeVar("M", Counter, Histogram)


class ByType(Generic[M]):
    """A metric labelled by task type, its child per type looked up once.

    ``labels()`` checks the values and takes the metric's lock on every call: on the create and
    completion paths that cost as much as the counter itself. Task types are a fixed set, so the
    cache is bounded."""

    def __init__(self, metric: M) -> None:
        self._metric: M = metric
        self._children: dict[str, M] = {}

    def __call__(self, task_type: str) -> M:
        child = self._children.get(task_type)
        if child is None:
            child = self._children[task_type] = self._metric.labels(task_type)
        return child


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.queue_depth = Gauge(
            "cracker_queue_depth", "Live tasks by type and status (pending or running).",
            ["type", "status"], registry=self.registry,
        )
        self.workers_available = Gauge(
            "cracker_workers_available", "Solver slots that can take tasks of this type.",
            ["type"], registry=self.registry,
        )
        self.created = Counter(
            "cracker_tasks_created", "Tasks accepted at creation.", ["type"], registry=self.registry
        )
        self.completed = Counter(
            "cracker_tasks_completed", "Tasks completed with a solution.", ["type"], registry=self.registry
        )
        self.rejected = Counter(
            "cracker_tasks_rejected", "Tasks rejected, by task error code.", ["type", "code"],
            registry=self.registry,
        )
        self.reports = Counter(
            "cracker_task_reports", "Reports of answers by task type and outcome: correct, refunded, "
            "share_exceeded, no_cost, or the refusal's error code.", ["type", "outcome"], registry=self.registry,
        )
        self.solve_seconds = Histogram(
            "cracker_solve_seconds", "Time from creation to a terminal status.", ["type"],
            buckets=_LATENCY_BUCKETS, registry=self.registry,
        )

        #: The per-type children of the hot paths' series (see ByType).
        self.created_of = ByType(self.created)
        self.completed_of = ByType(self.completed)
        self.solve_seconds_of = ByType(self.solve_seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
