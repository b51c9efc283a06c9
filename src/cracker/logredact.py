"""Secrets never reach a log line: proxy passwords, API keys, webhook secrets, credentials in URLs.

Redaction happens where every log record is made (the record factory), not in one handler: the
access log (uvicorn's, whose lines carry the query string where v1 clients put proxy
credentials), this service's own loggers, tracebacks and any handler an operator adds all see
the redacted record.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any, Final

MASK: Final = "***"

_RULES: Final[tuple[tuple[re.Pattern[str], str], ...]] = (
    # Credentials in a URL: scheme://user:password@host (a proxy, a callback URL).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@'\"]+@"), rf"\1{MASK}@"),
    # The same, percent-encoded inside a query string.
    (re.compile(r"(?i)(%3A%2F%2F)[^&\s/?#'\"]*?%40"), rf"\1{MASK}%40"),
    # Query parameters that carry secrets (v1 clients send proxies in the query string).
    (re.compile(
        r"(?i)([?&](?:proxy|key|api_?key|apikey|token|access_token|password|passwd|pass|secret|auth|"
        r"authorization|x-solvium-auth)=)[^&\s'\"]*"
    ), rf"\1{MASK}"),
    # Headers as they appear when a request or its headers are printed.
    (re.compile(r"(?i)(bearer\s+)[^\s'\",;]+"), rf"\1{MASK}"),
    (re.compile(r"(?i)((?:x-solvium-auth|authorization)['\"]?\s*[:=,]\s*['\"]?)(?!bearer\s)[^\s'\",;)]+"),
     rf"\1{MASK}"),
    # Our own secrets by their prefixes, wherever they appear.
    (re.compile(r"\bck_[A-Za-z0-9_\-]{8,}"), f"ck_{MASK}"),
    (re.compile(r"\bwhsec_[0-9a-fA-F]{8,}"), f"whsec_{MASK}"),
)


#: Every rule above needs one of these in the text (compared lowercased): a text with none of them
#: is returned as it is without running the rules (most log lines, every access line's path).
_TRIGGERS: Final = ("://", "%3a%2f%2f", "=", "bearer", "x-solvium-auth", "authorization", "ck_", "whsec_")


def redact(text: str) -> str:
    lowered = text.lower()
    if not any(trigger in lowered for trigger in _TRIGGERS):
        return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text


class _Redacted:
    """Stands for a log argument that is not a plain value: printed redacted, ``%s`` or ``%r``."""

    __slots__ = ("_value",)

    def __init__(self, value: object) -> None:
        self._value = value

    def __str__(self) -> str:
        return redact(str(self._value))

    def __repr__(self) -> str:
        return redact(repr(self._value))


def _redact_arg(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value  # kept as they are: %d and %.2f still format them
    if isinstance(value, str):
        return redact(value)
    return _Redacted(value)


def redact_record(record: logging.LogRecord) -> None:
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, Mapping):
        record.args = {name: _redact_arg(value) for name, value in record.args.items()}
    elif record.args:
        record.args = tuple(_redact_arg(value) for value in record.args)
    if record.exc_info and record.exc_info[0] is not None:
        # Formatted now, redacted, and kept: formatters use exc_text when it is set.
        record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


_installed = False


def install_log_redaction() -> None:
    """Redact every log record this process makes from now on (idempotent)."""
    global _installed
    if _installed:
        return
    make_record = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        redact_record(record)
        return record

    logging.setLogRecordFactory(redacting_factory)
    _installed = True
