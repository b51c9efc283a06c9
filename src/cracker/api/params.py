"""Parsing of path and query parameters shared by the bare and the FastAPI routes."""

from __future__ import annotations

import re
from uuid import UUID

from cracker.domain.errors import FieldError, ValidationFailed
from cracker.domain.task_types import resolve_type

#: The longest a GET may hold for the task to end (long-poll).
MAX_WAIT_S = 60


#: A UUID already in canonical form (what this service hands out): taken as it is, without the
#: cost of parsing it (a poll's every request carries one).
_CANONICAL = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def parse_id(raw_id: str, field: str) -> str:
    """A path id (task, account, key: all UUIDs) in canonical form, or ``validation_failed`` on ``field``."""
    if _CANONICAL.fullmatch(raw_id):
        return raw_id
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


def canonical_types(names: list[str], field: str = "types") -> list[str]:
    """Task type names (aliases resolved), sorted and unique, or ``validation_failed`` per unknown one."""
    out, bad = [], []
    for index, name in enumerate(names):
        resolved = resolve_type(name)
        if resolved is None:
            bad.append(FieldError(f"{field}.{index}", "unknown_task_type", f"Unknown task type {name!r}"))
        else:
            out.append(resolved.name)
    if bad:
        raise ValidationFailed(bad)
    return sorted(set(out))
