"""The error catalogue is a stable contract: every code is pinned here, with its status and flags."""

from __future__ import annotations

import re

from cracker.domain.catalogue import API_CODES, CATALOGUE, CHARGE_RULES, TASK_CODES, charge_applies
from tests.conftest import Api

# The published table, exactly: code -> (HTTP status, retryable).
PUBLISHED_API_ERRORS = {
    "missing_api_key": (401, False),
    "invalid_api_key": (401, False),
    "insufficient_scope": (401, False),
    "validation_failed": (422, False),
    "invalid_request": (400, False),
    "not_found": (404, False),
    "offer_not_found": (400, False),
    "insufficient_balance": (402, False),
    "rate_limit_exceeded": (429, True),
    "internal_error": (500, True),
    "service_unavailable": (503, True),
}
# Codes this server added; they may grow, never change.
ADDED_API_ERRORS = {
    "method_not_allowed": (405, False),
    "payload_too_large": (413, False),
    "no_solver_available": (422, False),
    "lease_lost": (409, False),
    "pool_type_not_allowed": (403, False),
    "task_not_completed": (409, False),
    "already_reported": (409, False),
    "report_window_closed": (409, False),
}
PUBLISHED_TASK_ERRORS = {
    "invalid_params", "missing_param", "invalid_base64", "no_proxy", "error_render", "challenge_error",
    "invalid_challenge", "wrong_challenge_payload", "proxy_blocked", "proxy_error",
    "ip_blocked_by_cloudflare", "bot_detected_by_cloudflare", "too_many_attempts_solving",
    "recaptcha_timeout", "hcaptcha_timeout", "solve_timeout", "upstream_timeout", "upstream_error",
    "empty_token", "no_token", "cancelled", "general_error",
}
ADDED_TASK_ERRORS = {"challenge_expired", "unsupported_challenge", "no_solution", "invalid_image", "worker_lost"}
CHARGED = {"proxy_blocked", "proxy_error", "ip_blocked_by_cloudflare", "bot_detected_by_cloudflare",
           "too_many_attempts_solving"}


def test_every_charged_code_says_where_a_worker_may_report_it() -> None:
    assert set(CHARGE_RULES) == CHARGED, "a charged code needs a rule in CHARGE_RULES (else no worker may send it)"
    assert not charge_applies("proxy_blocked", "image-to-text", {"image_b64": "x"})
    assert charge_applies("proxy_blocked", "recaptcha-v2", {"proxy": "http://p.example:1"})
    assert not charge_applies("ip_blocked_by_cloudflare", "recaptcha-v2", {"proxy": "http://p.example:1"})
    assert charge_applies("ip_blocked_by_cloudflare", "cf-clearance", {"proxy": "http://p.example:1"})
    assert charge_applies("upstream_error", "image-to-text", {})  # uncharged codes apply everywhere


def test_every_published_and_added_api_code_is_pinned() -> None:
    pinned = {**PUBLISHED_API_ERRORS, **ADDED_API_ERRORS}
    assert set(API_CODES) == set(pinned), "API codes may be added (pin them here), never renamed or removed"
    for code, (status, retryable) in pinned.items():
        spec = CATALOGUE[code]
        assert (spec.http_status, spec.retryable, spec.kind) == (status, retryable, "api"), code


def test_every_task_code_is_pinned() -> None:
    assert set(TASK_CODES) == PUBLISHED_TASK_ERRORS | ADDED_TASK_ERRORS
    assert {c for c in TASK_CODES if CATALOGUE[c].charged} == CHARGED
    assert CATALOGUE["proxy_blocked"].retryable  # as in the published example


async def test_errors_endpoint_lists_the_catalogue(api: Api) -> None:
    async with api.client() as client:
        response = await client.get("/v2/errors")
    assert response.status_code == 200
    entries = {e["code"]: e for e in response.json()["errors"]}
    assert set(entries) == set(CATALOGUE)
    for code, entry in entries.items():
        spec = CATALOGUE[code]
        assert entry["http_status"] == spec.http_status
        assert entry["retryable"] is spec.retryable
        assert entry["charged"] is spec.charged
        assert entry["doc_url"] == f"http://testserver/errors/{code.replace('_', '-')}"
        assert entry["fix"]


async def test_every_doc_url_has_a_page(api: Api) -> None:
    async with api.client() as client:
        entries = (await client.get("/v2/errors")).json()["errors"]
        for entry in entries:
            page = await client.get(entry["doc_url"].removeprefix("http://testserver"))
            assert page.status_code == 200, entry["code"]
            assert page.headers["content-type"].startswith("text/html")
            assert f"<code>{entry['code']}</code>" in page.text
        missing = await client.get("/errors/no-such-code")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


async def test_docs_base_url_is_configurable(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory(docs_base_url="https://docs.example.com/") as api:
        async with api.client() as client:
            body = (await client.get("/v2/balance")).json()
    assert body["error"]["doc_url"] == "https://docs.example.com/errors/missing-api-key"
    assert re.fullmatch(r"[0-9a-f-]{36}", body["error"]["request_id"])


async def test_offers_state_price_solver_and_work_bound(api: Api) -> None:
    async with api.client() as client:
        offers = {o["type"]: o for o in (await client.get("/v2/offers")).json()["offers"]}
    assert offers["turnstile"]["price"] == "0.0009" and offers["turnstile"]["solved_by"] == "sandbox"
    assert offers["cf-clearance"]["solved_by"] == "pool"
    for pow_type in ("altcha", "cap", "mcaptcha", "friendly-captcha", "pow-sha256"):
        assert offers[pow_type]["solved_by"] == "built-in"
        assert offers[pow_type]["work_limit"]
    assert offers["turnstile"]["work_limit"] is None
