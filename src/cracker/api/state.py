"""What the API's handlers share for the life of the application, as one typed object.

It hangs off the FastAPI instance as a plain attribute (``app.cracker``, read with ``api_state``)
rather than in Starlette's ``app.state``: each ``app.state.x`` goes through ``State.__getattr__``,
a Python call of about 0.7 us, and the poll made four of them, a few per cent of its whole cost
(``bench/create_profile.py --poll --gil``); and ``app.state`` is untyped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import FastAPI
from starlette.requests import HTTPConnection

if TYPE_CHECKING:
    # For the annotations only: client_limits imports the envelope module, which reads this state.
    from cracker.api.client_limits import AddressLimiter, LongPollSlots
    from cracker.api.ratelimit import RateLimiter
    from cracker.runtime import Runtime


@dataclass(slots=True)
class ApiState:
    #: Where error envelopes' doc_url points ("" = this server as the request reached it).
    docs_base_url: str
    #: Per account, this process's share of the limit.
    rate_limiter: RateLimiter
    #: Per client address, for requests without a valid key.
    address_limiter: AddressLimiter
    long_polls: LongPollSlots
    #: The dashboard's sign-in attempts per client address.
    signin_limiter: RateLimiter
    #: Set by the application's lifespan once the runtime has started (unset before: AttributeError).
    runtime: Runtime = field(init=False)


def attach(app: FastAPI, state: ApiState) -> None:
    app.cracker = state  # type: ignore[attr-defined]


def api_state(conn: HTTPConnection) -> ApiState:
    """The state of the application serving ``conn`` (whose scope's ``app`` the request-context layer
    sets to the FastAPI instance)."""
    state: ApiState = conn.scope["app"].cracker
    return state
