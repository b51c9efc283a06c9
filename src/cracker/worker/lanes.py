"""Lanes of a built-in worker: image-to-text has concurrency slots that proof of work cannot take.

One ``WorkerRuntime`` claims any type it serves into any free slot, so a backlog of proof-of-work
tasks (each may hold its slot until its deadline) kept every slot busy and image-to-text tasks
waited behind them, whoever sent them. OCR runs on a thread of its own, not on the proof-of-work
pool, so it only needs slots to be claimed: a second runtime, restricted to the OCR types, gives
it those. Each lane registers as a worker of its own in the registry.
"""

from __future__ import annotations

from typing import Final

from cracker.service.tasks import TaskService
from cracker.service.workers import WorkerService
from cracker.solvers.registry import SolverRegistry
from cracker.worker.runtime import WorkerRuntime

#: Task types served from the OCR lane.
OCR_TYPES: Final = frozenset({"image-to-text"})


def lane_workers(
    tasks: TaskService,
    solvers: SolverRegistry,
    workers: WorkerService,
    *,
    concurrency: int,
    ocr_concurrency: int,
    name: str = "in-process",
    types: frozenset[str] | None = None,
) -> list[WorkerRuntime]:
    """The runtimes of one built-in worker: every type but OCR with ``concurrency`` slots, OCR
    with ``ocr_concurrency`` of its own (a lane with no type to serve is left out)."""
    served = solvers.types if types is None else types & solvers.types
    lanes = []
    if served - OCR_TYPES:
        lanes.append(
            WorkerRuntime(tasks, solvers, workers, concurrency=concurrency, name=name, types=served - OCR_TYPES)
        )
    if served & OCR_TYPES:
        lanes.append(
            WorkerRuntime(
                tasks, solvers, workers, concurrency=ocr_concurrency, name=f"{name}-ocr", types=served & OCR_TYPES
            )
        )
    return lanes
