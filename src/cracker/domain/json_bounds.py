"""Bounds on free-form JSON (the vendor objects a task carries as the site served them).

Vendor objects keep fields this server does not model, so their shape is the client's choice.
Unbounded, they break what comes after validation: nesting past the serializer's depth limit
fails the create with a 500, and an integer past 64 bits is stored and then breaks every reader
that hands the task out (PostgreSQL's JSON, worker pools' own decoders). Both are refused here.
"""

from __future__ import annotations

import math
from typing import Any, Final

from pydantic_core import PydanticCustomError

#: Levels of objects and arrays inside a vendor object; real ones use three or four.
MAX_DEPTH: Final = 32
#: Integers must fit a signed 64-bit integer, what every JSON reader on the way can hold.
MIN_INT: Final = -(2**63)
MAX_INT: Final = 2**63 - 1


def json_problem(value: Any, max_depth: int = MAX_DEPTH) -> tuple[str, str] | None:
    """(path, reason) of the first value out of bounds, or None; iterative, so any depth is safe."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, path = stack.pop()
        if isinstance(item, dict | list):
            if depth >= max_depth:
                return path or ".", f"nested deeper than {max_depth} levels"
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((child, depth + 1, f"{path}.{key}" if path else str(key)) for key, child in pairs)
        elif isinstance(item, bool) or item is None or isinstance(item, str):
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                return path or ".", "an integer outside the signed 64-bit range"
        elif isinstance(item, float) and not math.isfinite(item):
            return path or ".", "a number that is not finite"
    return None


def check_json_bounds(value: Any) -> Any:
    """``value`` unchanged, or a ``json_out_of_bounds`` validation error naming where and why."""
    problem = json_problem(value)
    if problem is not None:
        path, reason = problem
        raise PydanticCustomError(
            "json_out_of_bounds", "Value at {path} is {reason}", {"path": path[:200], "reason": reason}
        )
    return value
