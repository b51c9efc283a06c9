"""Structured logs: one JSON object per line (or plain text for a terminal), with the request's id.

Every process (``cracker serve``, ``cracker worker``, the other commands) logs through the root
logger's one handler, set up by ``configure_logging``; uvicorn's own loggers propagate to it, so
its startup and error lines come out in the same format. A record carries, besides the standard
fields, the id of the request being served when it was made (a context variable that
``cracker.api.middleware`` sets per request) and the account it authenticated as. The access line
of each request adds the fields in ``ACCESS_FIELDS``.

Why a formatter of our own over python-json-logger: orjson is already a dependency and is several
times faster than ``json`` on the access line (one per request, on the poll hot path), and only
the fields named here are ever written: a library that dumps every ``extra`` attribute would put
whatever a caller attaches (uvicorn's ``color_message``, an object holding a key) in the line
unredacted. Redaction still happens where the record is made (``cracker.logredact``).
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Final, Literal

import orjson

from cracker.logredact import install_log_redaction

LogFormat = Literal["json", "text"]

#: Fields of the access line (``cracker.access``), in the order they are written.
ACCESS_FIELDS: Final = ("method", "route", "path", "status", "duration_ms")


class RequestLogContext:
    """What the log knows of the request being served: its id, and its account once authenticated."""

    __slots__ = ("account_id", "request_id")

    def __init__(self, request_id: str) -> None:
        self.request_id = request_id
        self.account_id: str | None = None


#: The request this task is serving (None outside requests: startup, workers, background jobs).
current_request: ContextVar[RequestLogContext | None] = ContextVar("cracker_request", default=None)


def bind_account(account_id: str) -> None:
    """Name the account of the request being served in its log lines (after authentication)."""
    context = current_request.get()
    if context is not None:
        context.account_id = account_id


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _context_fields(record: logging.LogRecord) -> dict[str, object]:
    fields: dict[str, object] = {}
    context = current_request.get()
    # The access line names its request explicitly: it is written after the context is left.
    request_id = getattr(record, "request_id", None) or (context.request_id if context else None)
    account_id = getattr(record, "account_id", None) or (context.account_id if context else None)
    if request_id:
        fields["request_id"] = request_id
    if account_id:
        fields["account_id"] = account_id
    attributes = record.__dict__
    for name in ACCESS_FIELDS:  # on the access line only; route is null where no route matched
        if name in attributes:
            fields[name] = attributes[name]
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp (UTC, ISO 8601), level, logger, message, the request's
    fields when there is one, and ``exception`` (the redacted traceback) when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(_context_fields(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``: the same fields, for a person at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _context_fields(record)
        if not fields:
            return text
        head, newline, rest = text.partition("\n")  # fields on the first line, before any traceback
        pairs = " ".join(f"{name}={value}" for name, value in fields.items())
        return f"{head} {pairs}{newline}{rest}"


def configure_logging(log_format: LogFormat = "json", level: int | str = logging.INFO) -> None:
    """Send every logger's records to stderr, one line each (JSON, or text), redacted."""
    install_log_redaction()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    # uvicorn's loggers write through the root's handler (serve passes log_config=None), never
    # through handlers of their own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # Alembic's per-migration INFO lines are noise.
    logging.getLogger("alembic").setLevel(logging.WARNING)
