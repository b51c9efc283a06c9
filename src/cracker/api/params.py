"""Parsing of path and query parameters shared by the bare and the FastAPI routes."""

from __future__ import annotations

from uuid import UUID

from cracker.domain.errors import FieldError, ValidationFailed

#: The longest a GET may hold for the task to end (long-poll).
MAX_WAIT_S = 60


def parse_id(raw_id: str, field: str) -> str:
    """A path id (task, account, key: all UUIDs) in canonical form, or ``validation_failed`` on ``field``."""
    try:
        return str(UUID(raw_id))
    except ValueError:
        raise ValidationFailed(
            [FieldError(field, "uuid_parsing", f"Input should be a valid UUID, got {raw_id[:64]!r}")]
        ) from None


def parse_task_id(raw_id: str) -> str:
    return parse_id(raw_id, "task_id")


def parse_wait(raw: str | None) -> float:
    if raw is None or raw == "":
        return 0.0
    try:
        wait_s = float(raw)
    except ValueError:
        wait_s = float("nan")
    if not 0 <= wait_s <= MAX_WAIT_S:  # also refuses nan
        raise ValidationFailed(
            [FieldError("wait", "out_of_range", f"wait must be a number of seconds from 0 to {MAX_WAIT_S}")]
        )
    return wait_s
