"""Rows to domain records, and values to the JSON the tasks table stores: shared by both stores."""

from __future__ import annotations

import json
from typing import Any

import orjson

from cracker.domain.tasks import Task, TaskStatus, TaskView
from cracker.store.schema import tasks

#: The tasks table's columns in table order: what ``task_from_row`` reads, by position.
TASK_COLUMNS = [c.name for c in tasks.columns]
assert TASK_COLUMNS[:18] == [
    "id", "account_id", "type", "status", "params", "solution", "error_code", "error_message", "price", "cost",
    "created_at", "started_at", "completed_at", "deadline_at", "lease_owner", "lease_expires_at", "attempts",
    "callback_url",
], "update task_from_row with the tasks columns"

#: The columns of a client's view of a task, in the order ``view_from_row`` reads them.
VIEW_COLUMNS = [
    "id", "account_id", "type", "status", "solution", "error_code", "error_message", "cost", "created_at",
    "started_at", "completed_at",
]


def dumps(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        # orjson stops at 64-bit integers; a vendor challenge may carry larger ones, echoed exactly.
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def task_from_row(row: Any) -> Task:
    # Positional access: this runs on every task read, and the mapping view costs several times more.
    return Task(
        id=row[0],
        account_id=row[1],
        type=row[2],
        status=TaskStatus(row[3]),
        # The stdlib parser keeps integers of any size exact (orjson turns large ones into floats);
        # params are read by solvers only, never on the polling path.
        params=json.loads(row[4]),
        solution=orjson.loads(row[5]) if row[5] is not None else None,
        error_code=row[6],
        error_message=row[7],
        price=row[8],
        cost=row[9],
        created_at=row[10],
        started_at=row[11],
        completed_at=row[12],
        deadline_at=row[13],
        lease_owner=row[14],
        attempts=row[16],
        callback_url=row[17],
    )


#: TaskStatus by its value: a dict lookup, where calling the enum costs several microseconds a poll.
_STATUS = {status.value: status for status in TaskStatus}


def view_from_row(row: Any) -> TaskView:
    """A row of ``VIEW_COLUMNS``, in that order."""
    return TaskView(
        id=row[0], account_id=row[1], type=row[2], status=_STATUS[row[3]],
        solution=orjson.loads(row[4]) if row[4] is not None else None, error_code=row[5],
        error_message=row[6], cost=row[7], created_at=row[8], started_at=row[9], completed_at=row[10],
    )
