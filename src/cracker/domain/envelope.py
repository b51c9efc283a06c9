"""The task envelope: the one JSON shape of a task, for GET, create, webhooks and the SDK."""

from __future__ import annotations

from typing import Any

from cracker.domain.catalogue import spec_for
from cracker.domain.clock import rfc3339
from cracker.domain.money import format_usd
from cracker.domain.tasks import Task, TaskView


def doc_url(docs_base: str, code: str) -> str:
    return f"{docs_base}/errors/{code.replace('_', '-')}"


def task_envelope(task: Task | TaskView, docs_base: str) -> dict[str, Any]:
    error = None
    if task.error_code is not None:
        spec = spec_for(task.error_code)
        error = {
            "code": task.error_code,
            "message": task.error_message or spec.message,
            "retryable": spec.retryable,
            "doc_url": doc_url(docs_base, task.error_code),
        }
    return {
        "task_id": task.id,
        "type": task.type,
        "status": task.status.value,
        "solution": task.solution,
        "error": error,
        "cost": format_usd(task.cost) if task.cost is not None else None,
        "created_at": rfc3339(task.created_at),
        "started_at": rfc3339(task.started_at),
        "completed_at": rfc3339(task.completed_at),
    }
