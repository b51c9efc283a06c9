"""The redaction rules applied to every log record."""

from __future__ import annotations

from cracker.logredact import redact


def test_redaction_rules() -> None:
    assert redact("GET /x?proxy=http%3A%2F%2Fu%3Apw%40h%3A80&a=1") == "GET /x?proxy=***&a=1"
    assert redact("https://user:pw@example.com/hook") == "https://***@example.com/hook"
    assert redact("https://token@example.com/") == "https://***@example.com/"
    assert redact("ref=http%3A%2F%2Fu%3Apw%40h") == "ref=http%3A%2F%2F***%40h"
    assert redact("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert redact("{'x-solvium-auth': 'zzz'}") == "{'x-solvium-auth': '***'}"
    assert redact("key ck_abcdefghijklmnop and whsec_0123456789abcdef") == "key ck_*** and whsec_***"
    assert redact("GET /v2/tasks/01959e02?wait=5 HTTP/1.1") == "GET /v2/tasks/01959e02?wait=5 HTTP/1.1"
