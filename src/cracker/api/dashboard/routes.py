"""The dashboard's pages: server-rendered HTML over the same services the API uses.

Every page needs a session (signed in with an API key); the operator pages need one signed in with
an admin key. An account's pages read only that account's rows: the session's account id is the
only account id any of them passes to a service.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import orjson
from fastapi import APIRouter, Request
from fastapi.templating import Jinja2Templates
from starlette.responses import JSONResponse, RedirectResponse, Response

from cracker.api.dashboard import session as sessions
from cracker.api.dashboard.charts import bar_chart
from cracker.api.envelope import task_envelope
from cracker.api.ratelimit import RateLimiter
from cracker.api.state import api_state
from cracker.domain.accounts import Scope
from cracker.domain.clock import now, rfc3339
from cracker.domain.dashboard import AccountRow, DashboardSession, TaskRow
from cracker.domain.errors import CrackerError, InsufficientScope, InvalidApiKey, NotFound
from cracker.domain.money import MoneyError, format_usd, parse_usd
from cracker.domain.tasks import TaskStatus
from cracker.runtime import Runtime
from cracker.service.dashboard import PAGE_LIMIT

router = APIRouter(prefix="/dashboard", include_in_schema=False)
# Autoescaping on for every template: account names, notes and error codes are client input.
templates = Jinja2Templates(env=jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True,
))

_STATUSES = [s.value for s in TaskStatus]
_LEDGER_KINDS = ["topup", "hold", "capture", "release"]
#: What a client's session may create; an operator's may also make admin keys.
_CLIENT_SCOPES = [Scope.CLIENT.value, Scope.WORKER.value]


def _usd(units: int | None) -> str:
    return "" if units is None else format_usd(units)


def _ts(at: float | None) -> str:
    return (rfc3339(at) or "").replace("T", " ").replace("Z", "") if at is not None else ""


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f} s"


templates.env.filters["usd"] = _usd
templates.env.filters["ts"] = _ts
templates.env.filters["seconds"] = _seconds


def _runtime(request: Request) -> Runtime:
    return api_state(request).runtime


def _page(request: Request, name: str, session: DashboardSession | None, status_code: int = 200,
          **context: Any) -> Response:
    response = templates.TemplateResponse(
        request, name, {"session": session, "active": name.removesuffix(".html"), **context}, status_code=status_code
    )
    _no_store(response)
    return response


def _no_store(response: Response) -> None:
    # Account data never sits in a shared cache, and a page never loads into another site's frame.
    response.headers["cache-control"] = "no-store"
    response.headers["x-frame-options"] = "DENY"
    response.headers["content-security-policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    )
    response.headers["referrer-policy"] = "same-origin"


def _date(text: str | None, *, end: bool = False) -> float | None:
    """A filter's YYYY-MM-DD (UTC) as epoch seconds; the end of the day for ``end``; None if blank or bad."""
    if not text:
        return None
    try:
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return day.timestamp() + (86_400 if end else 0)


def _signin_limiter(request: Request) -> RateLimiter:
    return api_state(request).signin_limiter


def _client_address(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


# --- sign in and out ----------------------------------------------------------------------------


@router.get("")
async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard/account", status_code=303)


@router.get("/login")
async def login_form(request: Request) -> Response:
    return _login_page(request)


def _login_page(request: Request, error: str | None = None, status_code: int = 200) -> Response:
    token = sessions.new_signin_token()
    response = _page(request, "login.html", None, status_code=status_code, error=error, signin_token=token)
    sessions.set_signin_cookie(request, response, token)
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await sessions.read_form(request)
    sessions.check_signin_token(request, form)
    limiter = _signin_limiter(request)
    address = _client_address(request)
    wait_s = limiter.peek(address)
    if wait_s is not None:
        response = _login_page(request, f"Too many failed sign-ins from your address: try again in {wait_s} s.", 429)
        response.headers["retry-after"] = str(wait_s)
        return response
    runtime = _runtime(request)
    try:
        key = await runtime.accounts.authenticate(form.get("api_key", "").strip(), Scope.CLIENT)
    except (InvalidApiKey, InsufficientScope):
        limiter.acquire(address)  # only failures pay
        return _login_page(request, "That API key is not valid (or is a worker key, which cannot sign in).", 401)
    new = await runtime.dashboard.sign_in(key)
    response = RedirectResponse("/dashboard/operator" if new.session.operator else "/dashboard/account", 303)
    sessions.set_session_cookie(request, response, new.token, int(runtime.settings.dashboard_session_ttl_s))
    response.delete_cookie(sessions.SIGNIN_COOKIE, path=sessions.COOKIE_PATH)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    session = await sessions.current_session(request)
    await sessions.checked_form(request, session)
    await _runtime(request).dashboard.sign_out(request.cookies[sessions.SESSION_COOKIE])
    response = RedirectResponse("/dashboard/login", 303)
    sessions.clear_session_cookie(request, response)
    return response


# --- the account's views ------------------------------------------------------------------------


@router.get("/account")
async def account(request: Request) -> Response:
    session = await sessions.current_session(request)
    runtime = _runtime(request)
    balance = await runtime.accounts.balance(session.account_id)
    dashboard = runtime.dashboard
    spend_h, outcome_h = await dashboard.account_charts(session.account_id, window_s=86_400, bucket_s=3600)
    spend_d, outcome_d = await dashboard.account_charts(session.account_id, window_s=30 * 86_400, bucket_s=86_400)
    day = lambda t: (rfc3339(t) or "")[5:10]  # noqa: E731
    charts = [
        bar_chart("spend-hour", "Spend per hour, last 24 h (USD)", spend_h, fmt=lambda v: format_usd(int(v))),
        bar_chart("tasks-hour", "Solved and rejected tasks per hour, last 24 h", outcome_h),
        bar_chart("spend-day", "Spend per day, last 30 days (USD)", spend_d, fmt=lambda v: format_usd(int(v)),
                  bucket_label=day),
        bar_chart("tasks-day", "Solved and rejected tasks per day, last 30 days", outcome_d, bucket_label=day),
    ]
    return _page(request, "account.html", session, balance=balance, charts=charts)


def _cursor(request: Request) -> tuple[float, str] | None:
    """The next page's keyset from ``before_at`` and ``before_id`` (the previous page's last row);
    None, the first page, when either is missing or malformed."""
    at, row_id = request.query_params.get("before_at", ""), request.query_params.get("before_id", "")
    if not row_id or len(row_id) > 64:
        return None
    try:
        value = float(at)
    except ValueError:
        return None
    return (value, row_id) if math.isfinite(value) else None


def _task_filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {
        "task_type": q.get("type") or None, "status": q.get("status") if q.get("status") in _STATUSES else None,
        "since": _date(q.get("from")), "until": _date(q.get("to"), end=True), "before": _cursor(request),
    }


def _older_link(request: Request, rows: Sequence[TaskRow] | Sequence[AccountRow]) -> str | None:
    """The query string of the next (older) page, the filters kept; None when this page is not full."""
    if len(rows) < PAGE_LIMIT:
        return None
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("before_at", "before_id")]
    last = rows[-1]
    return "?" + urlencode([*kept, ("before_at", repr(last.created_at)), ("before_id", last.id)])


def _task_json(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.id, "type": row.type, "status": row.status, "price": _usd(row.price), "cost": _usd(row.cost),
        "created_at": _ts(row.created_at), "completed_at": _ts(row.completed_at), "error_code": row.error_code or "",
    }


@router.get("/tasks")
async def task_list(request: Request) -> Response:
    session = await sessions.current_session(request)
    rows = await _runtime(request).dashboard.tasks(session.account_id, **_task_filters(request))
    return _page(request, "tasks.html", session, tasks=rows, statuses=_STATUSES, query=request.query_params,
                 older=_older_link(request, rows), paged=_cursor(request) is not None)


@router.get("/api/tasks")
async def task_list_json(request: Request) -> Response:
    """The task list's rows for the live page (polled): the same filters as /dashboard/tasks."""
    try:
        session = await sessions.current_session(request)
    except sessions.SignInRequired:
        return JSONResponse({"error": "signed_out"}, status_code=401)
    rows = await _runtime(request).dashboard.tasks(session.account_id, **_task_filters(request))
    response = JSONResponse({"tasks": [_task_json(row) for row in rows]})
    response.headers["cache-control"] = "no-store"
    return response


@router.get("/tasks/{task_id}")
async def task_detail(request: Request, task_id: str) -> Response:
    session = await sessions.current_session(request)
    runtime = _runtime(request)
    try:
        # Both check the task is the session's account's: another account's is "not found".
        view = await runtime.tasks.get(session.account_id, task_id)
        deliveries = await runtime.webhooks.log(session.account_id, task_id)
    except NotFound:
        return _page(request, "error.html", session, 404, title="Task not found",
                     message="No task with that id in this account.")
    rows = await runtime.dashboard.task_rows(session.account_id, [task_id])
    envelope = task_envelope(request, view)
    return _page(
        request, "task.html", session, task=rows[0] if rows else None, task_id=task_id,
        envelope=orjson.dumps(envelope, option=orjson.OPT_INDENT_2).decode(), deliveries=deliveries,
        live=not view.status.terminal,
    )


def _ledger_filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    before = q.get("before")
    return {
        "kind": q.get("kind") if q.get("kind") in _LEDGER_KINDS else None,
        "since": _date(q.get("from")), "until": _date(q.get("to"), end=True),
        "before_id": int(before) if before and before.isdigit() else None,
    }


@router.get("/ledger")
async def ledger(request: Request) -> Response:
    session = await sessions.current_session(request)
    rows = await _runtime(request).dashboard.ledger(session.account_id, **_ledger_filters(request))
    return _page(request, "ledger.html", session, rows=rows, kinds=_LEDGER_KINDS, query=request.query_params)


@router.get("/ledger.csv")
async def ledger_csv(request: Request) -> Response:
    session = await sessions.current_session(request)
    filters = {**_ledger_filters(request), "before_id": None}
    rows = await _runtime(request).dashboard.ledger(session.account_id, limit=100_000, **filters)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "time_utc", "kind", "task_id", "available_delta_usd", "held_delta_usd", "note"])
    for row in rows:
        writer.writerow([row.id, rfc3339(row.created_at), row.kind, row.task_id or "", format_usd(row.available_delta),
                         format_usd(row.held_delta), _csv_safe(row.note or "")])
    response = Response(out.getvalue(), media_type="text/csv; charset=utf-8")
    response.headers["content-disposition"] = 'attachment; filename="cracker-ledger.csv"'
    response.headers["cache-control"] = "no-store"
    return response


def _csv_safe(text: str) -> str:
    # A spreadsheet runs a cell that starts like a formula: an operator's note must stay text.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/keys")
async def keys(request: Request) -> Response:
    session = await sessions.current_session(request)
    return await _keys_page(request, session)


async def _keys_page(request: Request, session: DashboardSession, status_code: int = 200, **extra: Any) -> Response:
    listed = await _runtime(request).accounts.list_keys(session.account_id)
    scopes = [*_CLIENT_SCOPES, Scope.ADMIN.value] if session.operator else _CLIENT_SCOPES
    return _page(request, "keys.html", session, status_code, keys=listed, scopes=scopes, **extra)


@router.post("/keys")
async def create_key(request: Request) -> Response:
    session = await sessions.current_session(request)
    form = await sessions.checked_form(request, session)
    scope = form.get("scope", "")
    allowed = [*_CLIENT_SCOPES, Scope.ADMIN.value] if session.operator else _CLIENT_SCOPES
    if scope not in allowed:
        return await _keys_page(request, session, 400, error=f"Choose a scope: {', '.join(allowed)}.")
    try:
        issued = await _runtime(request).accounts.create_key(session.account_id, Scope(scope))
    except CrackerError as exc:
        return await _keys_page(request, session, exc.spec.http_status or 400, error=exc.message)
    # Shown in this answer only: the page is not cached and the key is stored as a hash.
    return await _keys_page(request, session, 201, issued=issued)


@router.post("/keys/{key_id}/revoke")
async def revoke_key(request: Request, key_id: str) -> Response:
    session = await sessions.current_session(request)
    await sessions.checked_form(request, session)
    runtime = _runtime(request)
    if key_id not in {k.id for k in await runtime.accounts.list_keys(session.account_id)}:
        return await _keys_page(request, session, 404, error="No such key in this account.")
    await runtime.accounts.revoke_key(key_id)
    return RedirectResponse("/dashboard/keys", 303)


@router.get("/webhook")
async def webhook(request: Request) -> Response:
    session = await sessions.current_session(request)
    return _page(request, "webhook.html", session, secret=None)


@router.post("/webhook/reveal")
async def webhook_reveal(request: Request) -> Response:
    session = await sessions.current_session(request)
    await sessions.checked_form(request, session)
    secret = await _runtime(request).webhooks.secret(session.account_id)
    return _page(request, "webhook.html", session, secret=secret)


@router.post("/webhook/rotate")
async def webhook_rotate(request: Request) -> Response:
    session = await sessions.current_session(request)
    await sessions.checked_form(request, session)
    runtime = _runtime(request)
    secrets = await runtime.webhooks.rotate_secret(session.account_id, runtime.settings.webhook_secret_overlap_s)
    return _page(request, "webhook.html", session, secret=secrets.current, rotated=True,
                 previous_until=secrets.previous_until)


# --- the operator's views -----------------------------------------------------------------------


@router.get("/operator")
async def operator_view(request: Request) -> Response:
    session = sessions.operator(await sessions.current_session(request))
    return await _operator_page(request, session)


async def _operator_page(request: Request, session: DashboardSession, status_code: int = 200,
                         **extra: Any) -> Response:
    runtime = _runtime(request)
    overview = await runtime.dashboard.operator_overview(await runtime.tasks.queue_depths())
    search = request.query_params.get("q") or None
    accounts = await runtime.dashboard.accounts(search=search, before=_cursor(request))
    offers = await runtime.offers.list(enabled_only=False)
    charts = [
        bar_chart("op-queued", "Most tasks queued per hour by type, last 24 h (sampled)", overview.queued),
        bar_chart("op-running", "Most tasks running per hour by type, last 24 h (sampled)", overview.running),
        bar_chart("op-solved", "Solved tasks per hour by type, last 24 h", overview.solved),
        bar_chart("op-rejected", "Rejected tasks per hour by type, last 24 h", overview.rejected),
        bar_chart("op-p95", "p95 latency per hour by type, last 24 h (s)", overview.p95, fmt=lambda v: f"{v:.2f}"),
    ]
    return _page(request, "operator.html", session, status_code, overview=overview, accounts=accounts,
                 offers=offers, charts=charts, search=search or "", now=now(),
                 older_accounts=_older_link(request, accounts), **extra)


@router.post("/operator/topup")
async def operator_topup(request: Request) -> Response:
    session = sessions.operator(await sessions.current_session(request))
    form = await sessions.checked_form(request, session)
    account_id = form.get("account_id", "")
    reason = form.get("reason", "").strip()
    try:
        amount = parse_usd(form.get("amount", ""))
    except MoneyError as exc:
        return await _operator_page(request, session, 400, error=f"Amount: {exc}")
    if amount <= 0 or not reason or len(reason) > 500:
        return await _operator_page(request, session, 400,
                                    error="A top-up needs an amount above zero and a reason (at most 500 characters).")
    try:
        balance = await _runtime(request).accounts.top_up(account_id, amount, note=reason)
    except NotFound:
        return await _operator_page(request, session, 404, error="No such account.")
    return await _operator_page(
        request, session, notice=f"Added {format_usd(amount)} USD to {account_id}: available now "
        f"{format_usd(balance.available)} USD.",
    )


@router.post("/operator/offers")
async def operator_offer(request: Request) -> Response:
    session = sessions.operator(await sessions.current_session(request))
    form = await sessions.checked_form(request, session)
    runtime = _runtime(request)
    task_type = form.get("type", "")
    known = {offer.type: offer for offer in await runtime.offers.list(enabled_only=False)}
    if task_type not in known:
        return await _operator_page(request, session, 404, error="No offer of that type.")
    try:
        price = parse_usd(form.get("price", "")) if form.get("price") else known[task_type].price
    except MoneyError as exc:
        return await _operator_page(request, session, 400, error=f"Price: {exc}")
    enabled = form.get("enabled") == "on"
    await runtime.offers.set(task_type, price, enabled=enabled)
    return await _operator_page(
        request, session, notice=f"{task_type}: {format_usd(price)} USD, {'enabled' if enabled else 'disabled'}."
    )
