"""Exact values of the money and schedule rules every account's bill and webhook log depend on:
amounts in and out of units, the charge rules of worker rejections, the webhook retry schedule and
its signature. Each assertion names one value; a changed constant, bound or operator fails one."""

from __future__ import annotations

import hashlib
import hmac
import json
from decimal import Decimal

import pytest

from cracker.domain import catalogue
from cracker.domain.catalogue import CATALOGUE, CHARGE_RULES, ChargeRule, charge_applies, spec_for, spec_for_slug
from cracker.domain.money import MAX_UNITS, UNITS_PER_USD, MoneyError, format_usd, parse_usd
from cracker.domain.webhooks import RETRY_FOR_S, new_secret, next_attempt_delay, sign

# --- money ---


@pytest.mark.parametrize(("text", "units"), [
    ("10.00", 100_000), ("0.0001", 1), ("0", 0), ("0.0000", 0), (" 1.5 ", 15_000), ("2", 20_000),
    (Decimal("0.0009"), 9), (3, 30_000), ("100000000000", MAX_UNITS), ("1E+2", 1_000_000),
])
def test_parse_usd_gives_exact_units(text: str | Decimal | int, units: int) -> None:
    """A top-up or price string becomes exactly these ten-thousandths of a USD (no float rounding)."""
    assert parse_usd(text) == units


@pytest.mark.parametrize(("text", "message"), [
    ("abc", "not a decimal amount: 'abc'"),
    ("", "not a decimal amount: ''"),
    ("-0.0001", "amount must be a non-negative number: '-0.0001'"),
    ("NaN", "amount must be a non-negative number: 'NaN'"),
    ("Infinity", "amount must be a non-negative number: 'Infinity'"),
    ("0.00001", "amount has more than 4 decimals: '0.00001'"),
    ("1.23456", "amount has more than 4 decimals: '1.23456'"),
    ("100000000000.0001", "amount too large: '100000000000.0001'"),
])
def test_parse_usd_refuses_what_is_not_an_amount(text: str, message: str) -> None:
    """Negative, non-finite, sub-unit and oversized amounts are refused with a message naming why:
    a top-up of -1 must never credit anything, nor 0.00001 round to a unit."""
    with pytest.raises(MoneyError) as raised:
        parse_usd(text)
    assert str(raised.value) == message


def test_the_largest_amount_is_accepted_and_one_unit_more_is_not() -> None:
    """The bound is inclusive: MAX_UNITS fits the 64-bit columns; one unit above is refused."""
    assert UNITS_PER_USD == 10_000 and MAX_UNITS == 10**15
    assert parse_usd(Decimal(MAX_UNITS) / UNITS_PER_USD) == MAX_UNITS
    with pytest.raises(MoneyError):
        parse_usd(Decimal(MAX_UNITS + 1) / UNITS_PER_USD)


@pytest.mark.parametrize(("units", "text"), [
    (0, "0.0000"), (1, "0.0001"), (9, "0.0009"), (10_000, "1.0000"), (100_000, "10.0000"), (12_345, "1.2345"),
    (-15, "-0.0015"), (-10_001, "-1.0001"), (MAX_UNITS, "100000000000.0000"),
])
def test_format_usd_shows_exactly_four_decimals(units: int, text: str) -> None:
    """The wire form of every balance, hold and cost; a negative (an overdraft in a report) keeps
    its sign on the whole amount."""
    assert format_usd(units) == text


# --- who may charge ---


PROXY = {"proxy": "http://p.example:8080"}


@pytest.mark.parametrize(("code", "task_type", "params", "allowed"), [
    ("proxy_blocked", "recaptcha-v2", PROXY, True),
    ("proxy_blocked", "recaptcha-v2", {}, False),
    ("proxy_blocked", "recaptcha-v2", {"proxy": ""}, False),
    ("proxy_error", "turnstile", PROXY, True),
    ("too_many_attempts_solving", "hcaptcha", PROXY, True),
    ("too_many_attempts_solving", "hcaptcha", {}, False),
    ("ip_blocked_by_cloudflare", "cf-clearance", PROXY, True),
    ("ip_blocked_by_cloudflare", "turnstile", PROXY, True),
    ("ip_blocked_by_cloudflare", "recaptcha-v2", PROXY, False),
    ("ip_blocked_by_cloudflare", "cf-clearance", {}, False),
    ("bot_detected_by_cloudflare", "cf-clearance", PROXY, True),
    ("bot_detected_by_cloudflare", "hcaptcha", PROXY, False),
    ("upstream_error", "image-to-text", {}, True),
    ("worker_lost", "pow-sha256", {}, True),
])
def test_a_charged_code_applies_only_where_its_rule_says(
    code: str, task_type: str, params: dict[str, str], allowed: bool
) -> None:
    """A worker may bill the client (a charged code) only for a task that carried the client's
    proxy, and the Cloudflare codes only on the Cloudflare types; uncharged codes apply anywhere."""
    assert charge_applies(code, task_type, params) is allowed


def test_a_charged_code_without_a_rule_is_never_accepted(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail closed: a charged code missing from CHARGE_RULES is refused from every worker."""
    monkeypatch.delitem(CHARGE_RULES, "proxy_error")
    assert charge_applies("proxy_error", "recaptcha-v2", PROXY) is False


def test_charge_rules_describe_where_they_apply() -> None:
    """The 422 a worker gets for a misplaced charged code quotes these words."""
    assert CHARGE_RULES["proxy_blocked"].describe() == "tasks sent with a proxy"
    assert CHARGE_RULES["ip_blocked_by_cloudflare"].describe() == "cf-clearance, turnstile tasks sent with a proxy"
    assert ChargeRule(needs_proxy=False, types=frozenset({"b", "a"})).describe() == "a, b tasks"
    assert ChargeRule(needs_proxy=False).describe() == "tasks"
    assert ChargeRule(needs_proxy=False).applies("anything", {}) is True


def test_specs_have_their_kind_category_and_charge_flag() -> None:
    """An API error is never charged and has the API category; a task error has no HTTP status."""
    api = spec_for("insufficient_balance")
    assert (api.kind, api.http_status, api.retryable, api.charged, api.category) == ("api", 402, False, False, "API")
    assert api.message == "Balance too low for this task." and api.fix == "Top up and retry."
    task = spec_for("proxy_blocked")
    assert (task.kind, task.http_status, task.retryable, task.charged, task.category) == (
        "task", None, True, True, "Proxy")
    assert (task.message, task.fix) == ("Proxy blocked.", "Rotate to a cleaner (residential) IP.")
    lost = spec_for("worker_lost")
    assert (lost.kind, lost.http_status, lost.retryable, lost.charged, lost.category) == (
        "task", None, True, False, "Lifecycle")
    params = spec_for("invalid_params")
    assert (params.retryable, params.charged, params.category) == (False, False, "Input")
    assert all(not s.charged for s in CATALOGUE.values() if s.kind == "api")


def test_the_catalogue_builders_fill_every_field() -> None:
    """The two builders the table is written with: an API error is never charged and files under
    "API"; a task error has no HTTP status, is neither retryable nor charged unless it says so.
    (Called here, not only at import: the table is built once, and the pinned codes above check
    its rows, not how the next row added will be built.)"""
    spec = catalogue.ErrorSpec
    assert catalogue._api("c", 418, True, "m", "f") == spec("c", "api", 418, True, False, "API", "m", "f")
    assert catalogue._task("Solve", "c", "m", "f") == spec("c", "task", None, False, False, "Solve", "m", "f")
    assert catalogue._task("Proxy", "c", "m", "f", retryable=True, charged=True) == spec(
        "c", "task", None, True, True, "Proxy", "m", "f")


def test_slugs_name_the_documentation_pages() -> None:
    """Each error's documentation page is its code with hyphens; the page route finds it back."""
    assert spec_for("missing_api_key").slug == "missing-api-key"
    assert spec_for_slug("missing-api-key") is CATALOGUE["missing_api_key"]
    assert spec_for_slug("worker-lost") is CATALOGUE["worker_lost"]
    assert spec_for_slug("missing_api_key") is None
    assert spec_for_slug("nope") is None


# --- the webhook retry schedule and signature ---


@pytest.mark.parametrize(("attempts_made", "delay"), [
    (0, 0.0), (1, 5.0), (2, 15.0), (3, 60.0), (4, 300.0), (5, 900.0), (6, 1800.0), (7, 3600.0), (8, 3600.0),
    (30, 3600.0),
])
def test_the_retry_schedule_in_seconds(attempts_made: int, delay: float) -> None:
    """docs/webhooks.md's schedule: 5 s, 15 s, 1 min, 5 min, 15 min, 30 min, then hourly."""
    assert next_attempt_delay(attempts_made) == delay
    assert isinstance(next_attempt_delay(attempts_made), float)


def test_deliveries_are_retried_for_a_day() -> None:
    assert RETRY_FOR_S == 86_400


def test_the_signature_is_hmac_sha256_of_timestamp_and_body() -> None:
    """Receivers verify ``v1`` as HMAC-SHA256(secret, "<t>.<body>"), recomputed here independently;
    during a rotation the previous secret signs a second ``v1``."""
    body = b'{"task_id":"t"}'
    mac = hmac.new(b"whsec_a", b"1700000000." + body, hashlib.sha256).hexdigest()
    old = hmac.new(b"whsec_b", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign("whsec_a", 1_700_000_000, body) == f"t=1700000000,v1={mac}"
    assert sign("whsec_a", 1_700_000_000, body, previous="whsec_b") == f"t=1700000000,v1={mac},v1={old}"


def test_a_new_secret_is_prefixed_and_random() -> None:
    first, second = new_secret(), new_secret()
    assert first.startswith("whsec_") and len(first) == len("whsec_") + 48
    assert int(first.removeprefix("whsec_"), 16) >= 0 and first != second


# --- the Idempotency-Key's request fingerprint ---


def test_the_request_fingerprint_is_canonical_json_and_stable() -> None:
    """An Idempotency-Key replays only the same request: the fingerprint is SHA-256 of the request
    as compact JSON with sorted keys, so key order does not matter and the stored fingerprints of
    the last 24 h keep matching after a restart. Integers beyond 64 bits (which orjson refuses) get
    the same canonical form from the standard library."""
    from cracker.service.tasks import _request_hash

    def canonical(task_type: str, params: dict[str, object], url: str | None) -> str:
        text = json.dumps({"type": task_type, "params": params, "callback_url": url}, sort_keys=True,
                          separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    small = _request_hash("turnstile", {"url": "https://a.example", "site_key": "k"}, None)
    assert small == canonical("turnstile", {"site_key": "k", "url": "https://a.example"}, None)
    big = {"b": 2**70, "a": [1, {"z": 1, "y": 2}]}
    assert _request_hash("pow-sha256", big, "https://h.example") == canonical("pow-sha256", big, "https://h.example")
    reordered = {"a": [1, {"y": 2, "z": 1}], "b": 2**70}
    assert _request_hash("pow-sha256", big, None) == _request_hash("pow-sha256", reordered, None)
    assert _request_hash("pow-sha256", big, None) != _request_hash("pow-sha256", {**big, "b": 2**70 + 1}, None)
