"""Every SDK operation, once, as a flow of calls (see _core)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from cracker.sdk._core import Call, Flow, RetryPolicy, error_of, with_retries
from cracker.sdk._errors import SolveTimeout, SolviumError, TaskRejected
from cracker.sdk._report import Report
from cracker.sdk._task import Task

#: The longest one long-poll request holds (the server allows 60 s; shorter survives proxies).
LONG_POLL_S = 25.0


def get_task(task_id: str, wait: float | None, policy: RetryPolicy) -> Flow:
    params = {"wait": wait} if wait else {}
    timeout = (wait or 0) + 15.0
    response = yield from with_retries(Call("GET", f"/v2/tasks/{task_id}", params=params, timeout=timeout), policy)
    return Task(response.json())


def get_json(path: str, policy: RetryPolicy) -> Flow:
    response = yield from with_retries(Call("GET", path), policy)
    return response.json()


def create_task(task_type: str, fields: dict[str, Any], idempotency_key: str | None, policy: RetryPolicy) -> Flow:
    # Always with a key: a create whose answer was lost can then be retried without a second charge.
    key = idempotency_key or str(uuid.uuid4())
    body = {name: value for name, value in fields.items() if value is not None}
    call = Call("POST", f"/v2/tasks/{task_type}", json=body, headers={"Idempotency-Key": key})
    response = yield from with_retries(call, policy)
    return Task(response.json())


def create_tasks(tasks: list[dict[str, Any]], idempotency_key: str | None, policy: RetryPolicy) -> Flow:
    """POST /v2/tasks/batch: per item, in order, its Task or the error it got (not raised)."""
    key = idempotency_key or str(uuid.uuid4())  # as create_task: safe to retry as a whole
    body = {"tasks": [{name: value for name, value in t.items() if value is not None} for t in tasks]}
    response = yield from with_retries(Call("POST", "/v2/tasks/batch", json=body, headers={"Idempotency-Key": key}),
                                       policy)
    results: list[Task | SolviumError] = [
        Task(item["task"]) if item.get("task") is not None else error_of(item["error"], item.get("status"))
        for item in response.json()["results"]
    ]
    return results


def cancel(task_id: str, policy: RetryPolicy) -> Flow:
    response = yield from with_retries(Call("DELETE", f"/v2/tasks/{task_id}"), policy)
    return Task(response.json())


def wait_for(task: Task, timeout: float, policy: RetryPolicy) -> Flow:
    """Long-poll until the task ends: no blind sleeps, one open request at a time."""
    deadline = time.monotonic() + timeout
    while not task.done:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise SolveTimeout(f"Task {task.task_id} still {task.status} after {timeout:.0f} s")
        task = yield from get_task(task.task_id, min(LONG_POLL_S, max(remaining, 0.1)), policy)
    if task.status == "rejected":
        raise TaskRejected(task)
    return task


def solve(task_type: str, fields: dict[str, Any], timeout: float, idempotency_key: str | None,
          policy: RetryPolicy) -> Flow:
    task = yield from create_task(task_type, fields, idempotency_key, policy)
    return (yield from wait_for(task, timeout, policy))


def solve_token(task_type: str, fields: dict[str, Any], timeout: float, policy: RetryPolicy) -> Flow:
    """The 1.x SDK's contract: the solution string."""
    task = yield from solve(task_type, fields, timeout, None, policy)
    return task.token


def report(task_id: str, correct: bool, expected: str | None, policy: RetryPolicy) -> Flow:
    """Not retried: a report whose answer was lost may have been recorded, and a second one is
    refused (``AlreadyReported``), so the caller decides."""
    body: dict[str, Any] = {"correct": correct}
    if expected is not None:
        body["expected"] = expected
    call = Call("POST", f"/v2/tasks/{task_id}/report", json=body, retry=False)
    response = yield from with_retries(call, policy)
    return Report(response.json())
