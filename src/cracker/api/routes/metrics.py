"""GET /metrics: Prometheus text, the per-type health of the service."""

from __future__ import annotations

from fastapi import APIRouter
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response

from cracker.api.deps import RuntimeDep
from cracker.api.responses import COMMON, errors
from cracker.domain.task_types import TASK_TYPES

router = APIRouter(tags=["status"])


@router.get(
    "/metrics", response_class=Response, responses=errors(*COMMON),
    summary="Prometheus metrics: queue depth, workers available, solve latency, outcomes per type",
    operation_id="get_metrics",
)
async def metrics(runtime: RuntimeDep) -> Response:
    m = runtime.metrics
    depths = await runtime.tasks.queue_depths()
    # Every live worker of the registry (in-process, worker processes, remote pools), as this
    # process last saw it.
    slots = runtime.capacity.slots()
    for task_type in TASK_TYPES:
        for status in ("pending", "running"):
            m.queue_depth.labels(task_type, status).set(depths.get((task_type, status), 0))
        m.workers_available.labels(task_type).set(slots.get(task_type, 0))
    return Response(m.render(), media_type=CONTENT_TYPE_LATEST)
