"""Limits on callers who have not proven who they are, and on one account's open long-polls.

The per-key rate limit needs a valid key. Everything else (public routes, and requests whose key
is missing, unknown or of the wrong scope, each of which costs a database read) is limited per
client address instead, so that no one can use the server's work for free at any rate.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cracker.api.envelope import error_response
from cracker.api.ratelimit import RateLimiter
from cracker.domain.errors import RateLimitExceeded
from cracker.logs import bind_account

#: Flags in the request's state: a token was taken for this request / its key was valid.
CHARGED = "address_charged"
AUTHENTICATED = "authenticated"


def address_of(scope: Scope) -> str:
    """The client's address as the limit counts it: IPv4 per address, IPv6 per /64 (one host
    holds a whole /64, so counting per address would give it billions of buckets)."""
    client = scope.get("client")
    host = str(client[0]) if client else ""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def api_key_in(scope: Scope) -> str | None:
    """The key from ``x-solvium-auth``, else from ``Authorization: Bearer``."""
    # Scans the raw ASGI headers: building Starlette's Headers object costs more than this.
    authorization = b""
    name: bytes
    value: bytes
    for name, value in scope["headers"]:
        if name == b"x-solvium-auth" and value:
            return value.decode("latin-1")
        if name == b"authorization":
            authorization = value
    scheme, _, credentials = authorization.decode("latin-1").partition(" ")
    return (credentials.strip() or None) if scheme.lower() == "bearer" else None


class AddressLimiter:
    """A token bucket per client address for requests that carry no valid key."""

    def __init__(self, rate: float, burst: int) -> None:
        self._buckets = RateLimiter(rate, burst)

    @property
    def enabled(self) -> bool:
        return self._buckets.enabled

    def charge(self, scope: Scope) -> None:
        """Take this request's token (once per request); RateLimitExceeded when none is left."""
        state: dict[str, Any] = scope.setdefault("state", {})
        if state.get(CHARGED):
            return
        state[CHARGED] = True
        wait_s = self._buckets.acquire(address_of(scope))
        if wait_s is not None:
            raise RateLimitExceeded(wait_s, f"Too many requests without a valid key; retry in {wait_s} s")

    def check(self, scope: Scope) -> None:
        """RateLimitExceeded if the address has no token left; takes none (a key may yet be valid)."""
        wait_s = self._buckets.peek(address_of(scope))
        if wait_s is not None:
            raise RateLimitExceeded(wait_s, f"Too many requests without a valid key; retry in {wait_s} s")


class AddressGate:
    """ASGI layer in front of the routes: a request without a key pays its token up front; one
    with a key that is not known valid is refused up front when the address has no token left,
    and pays after unless the key proved valid (a public route never checks a key, so a made-up
    key must not buy free requests). ``authenticate`` does the same for the routes served before
    this layer.

    A key known valid whose account has no token left is refused here too, before the body is
    read and the route's dependencies solved: an account flooding at many times its limit costs
    the server a header scan and a cache look-up per refusal (``authenticate`` takes the token of
    the requests let through)."""

    def __init__(
        self, app: ASGIApp, limiter: AddressLimiter, account_limiter: RateLimiter,
        trusted_account: Callable[[str], str | None],
    ) -> None:
        """``trusted_account``: the account of a key found valid moments ago (no database read), else None."""
        self.app = app
        self.trusted_account = trusted_account
        self.limiter = limiter
        self.account_limiter = account_limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not (self.limiter.enabled or self.account_limiter.enabled):
            await self.app(scope, receive, send)
            return
        state: dict[str, Any] = scope.setdefault("state", {})
        key = api_key_in(scope)
        try:
            account_id = self.trusted_account(key) if key else None
            if account_id is not None:
                bind_account(account_id)  # its access line names the account, refused or not
                wait_s = self.account_limiter.peek(account_id)
                if wait_s is not None:
                    raise RateLimitExceeded(wait_s)
            elif key is None and self.limiter.enabled:
                self.limiter.charge(scope)
            elif self.limiter.enabled:
                self.limiter.check(scope)
        except RateLimitExceeded as exc:
            await error_response(
                HTTPConnection(scope), exc.code, exc.message, headers=exc.headers
            )(scope, receive, send)
            return

        if not self.limiter.enabled:
            await self.app(scope, receive, send)
            return

        async def charging_send(message: Message) -> None:
            if message["type"] == "http.response.start" and not state.get(AUTHENTICATED):
                # This answer stands; the address's next requests are refused.
                with suppress(RateLimitExceeded):
                    self.limiter.charge(scope)
            await send(message)

        await self.app(scope, receive, charging_send)


class LongPollSlots:
    """At most ``limit`` long-polls open at once per account (in this process)."""

    RETRY_AFTER_S = 1

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[str] = Counter()

    @contextmanager
    def hold(self, account_id: str) -> Iterator[None]:
        if self._open[account_id] >= self.limit:
            raise RateLimitExceeded(
                self.RETRY_AFTER_S,
                f"This account already holds {self.limit} long-polls open; poll without wait, or retry "
                f"in {self.RETRY_AFTER_S} s",
            )
        self._open[account_id] += 1
        try:
            yield
        finally:
            self._open[account_id] -= 1
            if self._open[account_id] <= 0:
                del self._open[account_id]
