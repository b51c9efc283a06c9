"""The log line formats: a line written while a request is served carries its ids; only the named
fields are written (never an arbitrary ``extra``); a traceback stays inside the one JSON line."""

from __future__ import annotations

import json
import logging
import sys

from cracker.logs import JsonFormatter, RequestLogContext, TextFormatter, bind_account, current_request


def record(message: str, **extra: object) -> logging.LogRecord:
    made = logging.getLogger("cracker.test").makeRecord("cracker.test", logging.INFO, __file__, 1, message, (), None)
    made.__dict__.update(extra)
    return made


def test_a_line_written_during_a_request_carries_its_ids() -> None:
    """An application line (not only the access line) names the request and, once bound, the account."""
    token = current_request.set(RequestLogContext("01a22fa8-ada3-7521-9105-d7b46cf91021"))
    try:
        before = json.loads(JsonFormatter().format(record("looking up")))
        bind_account("acct-1")
        after = json.loads(JsonFormatter().format(record("found")))
        text = TextFormatter().format(record("found"))
    finally:
        current_request.reset(token)
    outside = json.loads(JsonFormatter().format(record("background")))
    assert before["request_id"] == "01a22fa8-ada3-7521-9105-d7b46cf91021" and "account_id" not in before
    assert (after["request_id"], after["account_id"]) == ("01a22fa8-ada3-7521-9105-d7b46cf91021", "acct-1")
    assert text.endswith(" request_id=01a22fa8-ada3-7521-9105-d7b46cf91021 account_id=acct-1")
    assert set(outside) == {"timestamp", "level", "logger", "message"}


def test_only_named_fields_are_written_and_a_traceback_stays_on_one_line() -> None:
    """An ``extra`` the formatter does not know (uvicorn's color_message, an object holding a key)
    never reaches the line; an exception is one field of the same line."""
    try:
        raise ValueError("boom")
    except ValueError:
        failing = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    failing.__dict__["color_message"] = "ck_secretsecretsecret"
    line = JsonFormatter().format(failing)
    assert "\n" not in line and "color_message" not in line
    parsed = json.loads(line)
    assert parsed["level"] == "error" and "ValueError: boom" in parsed["exception"]
