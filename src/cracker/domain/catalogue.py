"""The error catalogue: every error code the service can answer with, API and task errors alike.

This is a stable contract (tests pin every code): codes may be added, never renamed or removed.
The API codes and their HTTP status / ``retryable`` flags are exactly those of the published
documentation page; the codes marked ``added`` are this server's additions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ErrorKind = Literal["api", "task"]


@dataclass(frozen=True, slots=True)
class ErrorSpec:
    code: str
    kind: ErrorKind
    #: HTTP status of an API error; a task error is reported inside a 200 envelope.
    http_status: int | None
    retryable: bool
    #: A rejected task whose error is ``charged`` keeps its price: the failure came from the
    #: caller's own input (a blocked proxy, say), and the solver's work was spent.
    charged: bool
    category: str
    message: str
    fix: str

    @property
    def slug(self) -> str:
        return self.code.replace("_", "-")


def _api(code: str, status: int, retryable: bool, message: str, fix: str) -> ErrorSpec:
    return ErrorSpec(code, "api", status, retryable, False, "API", message, fix)


def _task(
    category: str, code: str, message: str, fix: str, *, retryable: bool = False, charged: bool = False
) -> ErrorSpec:
    return ErrorSpec(code, "task", None, retryable, charged, category, message, fix)


_SPECS: tuple[ErrorSpec, ...] = (
    # --- API errors of the published table ---
    _api("missing_api_key", 401, False, "x-solvium-auth header missing.",
         "Send your API key in the x-solvium-auth header (or Authorization: Bearer <key>)."),
    _api("invalid_api_key", 401, False, "API key is unknown or revoked.",
         "Check the key; create a new one with `cracker keys create`."),
    _api("insufficient_scope", 401, False, "This API key's scope does not allow this request.",
         "Use a key of the right scope: client keys create and read tasks, worker keys serve tasks, "
         "admin keys do both and manage accounts."),
    _api("validation_failed", 422, False, "Request fields failed schema validation.",
         "Read `details`: one entry per failing field, with a machine-readable code."),
    _api("invalid_request", 400, False, "The request is malformed.",
         "Send a well-formed JSON body with Content-Type: application/json."),
    _api("not_found", 404, False, "Not found.",
         "The task id is unknown or belongs to another account; the route may not exist."),
    _api("offer_not_found", 400, False, "No pricing offer for this task type.",
         "GET /v2/offers lists the task types this server sells."),
    _api("insufficient_balance", 402, False, "Balance too low for this task.", "Top up and retry."),
    _api("rate_limit_exceeded", 429, True, "Rate limit exceeded.",
         "Back off and retry after the number of seconds in the Retry-After header."),
    _api("internal_error", 500, True, "Internal server error.",
         "Retry once; if it persists, report the request_id."),
    _api("service_unavailable", 503, True, "Service temporarily unavailable.", "Retry with backoff."),
    # --- API errors added by this server ---
    _api("method_not_allowed", 405, False, "This route does not accept this HTTP method.",
         "See the Allow header or /openapi.json for the methods the route accepts."),
    _api("payload_too_large", 413, False, "Request body too large.",
         "Shrink the body below the limit named in the message."),
    _api("no_solver_available", 422, False,
         "No built-in solver accepts this task and no worker pool serving its type is attached.",
         "Token captchas with real site keys need an attached worker pool; the built-in sandbox "
         "answers only the vendors' documented test keys."),
    _api("pool_type_not_allowed", 403, False, "This worker pool may not serve these task types.",
         "A worker key serves the types no built-in solver covers; an operator allows more with "
         "`cracker pools allow ACCOUNT --types ...` (or PUT /v2/admin/accounts/{id}/pool-types)."),
    _api("lease_lost", 409, False, "This worker no longer holds the task's lease; the result was dropped.",
         "The lease expired (no heartbeat in time) and the task went back to the queue, or it ended "
         "otherwise. Heartbeat more often than heartbeat_interval_s and drop the task."),
    _api("task_not_completed", 409, False, "Only a completed task can be reported.",
         "Report a task once it is completed: a pending or running task has no answer yet, and a "
         "rejected one was not charged (or was charged for the caller's own input)."),
    _api("already_reported", 409, False, "This task was reported already.",
         "A task is reported once, right or wrong; the first report stands (its refund included)."),
    _api("report_window_closed", 409, False, "The time to report this task has passed.",
         "Report a wrong answer within the operator's window after the task completed "
         "(CRACKER_REPORT_WINDOW_S, 10 minutes unless the operator changed it)."),
    # --- Task-rejection errors of the published list ---
    _task("Input", "invalid_params", "Invalid task parameters.", "Re-check required fields."),
    _task("Input", "missing_param", "A required parameter is missing.",
          "Make sure url and challenge_body_b64 were sent."),
    _task("Input", "invalid_base64", "Invalid base64.",
          "Re-encode with standard base64 (no URL-safe alphabet)."),
    _task("Input", "no_proxy", "This task type needs a proxy.",
          "Pass a proxy: reCAPTCHA v3 and cf-clearance need one."),
    _task("Challenge", "error_render", "The captcha did not render.",
          "Verify site_key matches what the page uses."),
    _task("Challenge", "challenge_error", "The challenge failed.",
          "The site key / URL pair is no longer authorised."),
    _task("Challenge", "invalid_challenge", "Invalid challenge.",
          "The challenge token expired or is malformed; fetch a fresh one."),
    _task("Challenge", "wrong_challenge_payload", "Wrong challenge payload.",
          "Re-fetch the protected page; resend challenge_body_b64."),
    _task("Proxy", "proxy_blocked", "Proxy blocked.", "Rotate to a cleaner (residential) IP.",
          retryable=True, charged=True),
    _task("Proxy", "proxy_error", "Proxy error.", "Bad credentials, no HTTPS, or a dead proxy.",
          retryable=True, charged=True),
    _task("Proxy", "ip_blocked_by_cloudflare", "IP blocked by Cloudflare.",
          "Switch IP and re-fetch the page.", retryable=True, charged=True),
    _task("Proxy", "bot_detected_by_cloudflare", "Bot detected by Cloudflare.",
          "Use a static residential proxy for cf-clearance.", retryable=True, charged=True),
    _task("Solve", "too_many_attempts_solving", "Too many attempts.", "Proxy flagged; rotate.",
          retryable=True, charged=True),
    _task("Solve", "recaptcha_timeout", "reCAPTCHA timed out.",
          "Retry; if persistent, switch proxy.", retryable=True),
    _task("Solve", "hcaptcha_timeout", "hCaptcha timed out.", "Site key distrusts your IP; rotate.",
          retryable=True),
    # Expired work is not charged: a task may expire behind other tasks or under the server's
    # load, which its sender cannot control. What bounds a flood of tasks that expire on purpose
    # is the work limit of each type (refused at creation) and each task's share of the solvers.
    _task("Solve", "solve_timeout", "The task was not solved before its deadline.",
          "Retry; use a faster proxy where one is used. Not charged, whatever work was spent.", retryable=True),
    _task("Solve", "upstream_timeout", "Upstream timed out.", "Transient. Retry once.", retryable=True),
    _task("Solve", "upstream_error", "Upstream error.",
          "The target site changed its challenge flow. Refresh the token."),
    _task("Output", "empty_token", "The solver produced an empty token.", "Retry.", retryable=True),
    _task("Output", "no_token", "The solver produced no token.", "Retry.", retryable=True),
    _task("Lifecycle", "cancelled", "The task was cancelled.", "Resubmit."),
    _task("Lifecycle", "general_error", "The task failed.",
          "Open a ticket with task_id and request_id.", retryable=True),
    # --- Task-rejection errors added by this server ---
    _task("Challenge", "challenge_expired", "The challenge expired before it was solved.",
          "Fetch a fresh challenge from the site and submit it at once."),
    _task("Challenge", "unsupported_challenge", "The challenge is not a pure proof of work.",
          "This server solves only pure proof-of-work challenges (no human code challenges, "
          "no instrumentation)."),
    _task("Solve", "no_solution", "No solution exists in the challenge's search range.",
          "The challenge is malformed or was tampered with; fetch a fresh one."),
    _task("Input", "invalid_image", "The image cannot be read.",
          "Send a single-frame PNG, JPEG or GIF within the size limits, standard base64."),
    _task("Lifecycle", "worker_lost", "The workers that leased this task stopped responding.",
          "Transient: the task was retried on other workers as many times as the server allows. "
          "Retry.", retryable=True),
)

CATALOGUE: dict[str, ErrorSpec] = {spec.code: spec for spec in _SPECS}
API_CODES: tuple[str, ...] = tuple(s.code for s in _SPECS if s.kind == "api")
TASK_CODES: tuple[str, ...] = tuple(s.code for s in _SPECS if s.kind == "task")
_BY_SLUG: dict[str, ErrorSpec] = {spec.slug: spec for spec in _SPECS}


#: Task types whose Cloudflare-specific failures a pool may report as the caller's.
_CLOUDFLARE_TYPES = frozenset({"cf-clearance", "turnstile"})


@dataclass(frozen=True, slots=True)
class ChargeRule:
    """Where a ``charged`` task error may be reported by a worker.

    A charged rejection bills the client for a failure that came from its own input; the only
    such input today is the proxy it sent, so every rule needs one. Without this check any pool
    could end any account's task (an image, a proof of work) with ``proxy_blocked`` and bill it
    for no work.
    """

    #: The task must carry the client's proxy (``params["proxy"]``).
    needs_proxy: bool = True
    #: Only these task types; None: any type that meets ``needs_proxy``.
    types: frozenset[str] | None = None

    def applies(self, task_type: str, params: Mapping[str, Any]) -> bool:
        if self.needs_proxy and not params.get("proxy"):
            return False
        return self.types is None or task_type in self.types

    def describe(self) -> str:
        where = f"{', '.join(sorted(self.types))} tasks" if self.types is not None else "tasks"
        return f"{where} sent with a proxy" if self.needs_proxy else where


#: Every charged task code and where it applies. A charged code missing here is never accepted
#: from a worker (fail closed); tests/test_catalogue.py keeps the two lists in step.
CHARGE_RULES: dict[str, ChargeRule] = {
    "proxy_blocked": ChargeRule(),
    "proxy_error": ChargeRule(),
    "ip_blocked_by_cloudflare": ChargeRule(types=_CLOUDFLARE_TYPES),
    "bot_detected_by_cloudflare": ChargeRule(types=_CLOUDFLARE_TYPES),
    # "Proxy flagged": the attempts were spent on the client's proxy.
    "too_many_attempts_solving": ChargeRule(),
}


def charge_applies(code: str, task_type: str, params: Mapping[str, Any]) -> bool:
    """May a worker end this task with ``code``? Always for an uncharged code; a charged one only
    where its rule says the failure came from the client's input."""
    if not CATALOGUE[code].charged:
        return True
    rule = CHARGE_RULES.get(code)
    return rule is not None and rule.applies(task_type, params)


def spec_for(code: str) -> ErrorSpec:
    return CATALOGUE[code]


def spec_for_slug(slug: str) -> ErrorSpec | None:
    return _BY_SLUG.get(slug)
