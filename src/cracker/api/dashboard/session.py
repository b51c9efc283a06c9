"""The dashboard's session cookie, its CSRF tokens and the sign-in rate limit.

The session cookie is HttpOnly (no script reads it), SameSite=Strict (no other site's page sends
it) and Secure when the request came over https. Every POST carries the session's synchronizer
token in a form field; the sign-in form, made before any session exists, carries a double-submit
token (a random value both in its own cookie and in the form).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import Response

from cracker.api.client_limits import AUTHENTICATED
from cracker.api.state import api_state
from cracker.domain.dashboard import DashboardSession

SESSION_COOKIE = "cracker_session"
SIGNIN_COOKIE = "cracker_signin"
#: Both cookies are sent only to the dashboard's own paths.
COOKIE_PATH = "/dashboard"
#: A dashboard form is a few fields: anything larger is not one of ours.
MAX_FORM_BYTES = 16_384


class SignInRequired(Exception):
    """No valid session: pages redirect to the sign-in form, the JSON routes answer 401."""


class CsrfRefused(Exception):
    """A POST without the session's (or the sign-in form's) token: answered 403, nothing done."""


class NotOperator(Exception):
    """A session of a key without the admin scope asked for the operator view: answered 403."""


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session_cookie(request: Request, response: Response, token: str, max_age_s: int) -> None:
    response.set_cookie(
        SESSION_COOKIE, token, max_age=max_age_s, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request),
    )


def clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request))


def new_signin_token() -> str:
    return secrets.token_urlsafe(24)


def set_signin_cookie(request: Request, response: Response, token: str) -> None:
    """The sign-in form's double-submit token: the same value in this cookie and in the form."""
    response.set_cookie(
        SIGNIN_COOKIE, token, max_age=3600, path=COOKIE_PATH, httponly=True, samesite="strict",
        secure=_secure(request),
    )


async def current_session(request: Request) -> DashboardSession:
    """The request's session, or SignInRequired. A valid session counts as authenticated for the
    per-address limit (like a valid API key)."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInRequired
    runtime = api_state(request).runtime
    session = await runtime.dashboard.session(token)
    if session is None:
        raise SignInRequired
    request.scope.setdefault("state", {})[AUTHENTICATED] = True
    return session


def operator(session: DashboardSession) -> DashboardSession:
    if not session.operator:
        raise NotOperator
    return session


async def read_form(request: Request) -> dict[str, str]:
    """An urlencoded form's fields, the first value of each (the dashboard's forms repeat none)."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise CsrfRefused
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=50)
    return {name: values[0] for name, values in fields.items()}


async def checked_form(request: Request, session: DashboardSession) -> dict[str, str]:
    """The posted form, once its ``csrf`` field matches the session's token; else CsrfRefused."""
    form = await read_form(request)
    if not hmac.compare_digest(form.get("csrf", "").encode(), session.csrf_token.encode()):
        raise CsrfRefused
    return form


def check_signin_token(request: Request, form: dict[str, str]) -> None:
    cookie = request.cookies.get(SIGNIN_COOKIE, "")
    posted = form.get("csrf", "")
    if not cookie or not hmac.compare_digest(cookie.encode(), posted.encode()):
        raise CsrfRefused
