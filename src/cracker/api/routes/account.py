"""Account and status routes: balance and health."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from cracker.api.deps import ClientKey, RuntimeDep
from cracker.api.envelope import JSONBytes
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.schemas import BalanceModel, HealthModel, WebhookSecretModel
from cracker.domain.clock import now, rfc3339
from cracker.domain.money import format_usd
from cracker.domain.webhooks import SIGNATURE_HEADER

router = APIRouter(prefix="/v2", tags=["account"])


@router.get(
    "/balance", response_model=BalanceModel, responses=errors(*AUTH, *COMMON),
    summary="Account balance in USD", operation_id="get_balance",
)
async def get_balance(runtime: RuntimeDep, key: ClientKey) -> Response:
    balance = await runtime.accounts.balance(key.account_id)
    return JSONBytes(
        {"balance": format_usd(balance.available), "held": format_usd(balance.held), "currency": "USD"}
    )


@router.get(
    "/webhooks/secret", response_model=WebhookSecretModel, responses=errors(*AUTH, *COMMON),
    summary="This account's webhook signing secret (made on first use)", operation_id="get_webhook_secret",
)
async def get_webhook_secret(runtime: RuntimeDep, key: ClientKey) -> Response:
    secret = await runtime.webhooks.secret(key.account_id)
    return JSONBytes({
        "secret": secret, "header": SIGNATURE_HEADER,
        "scheme": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>',
    })


@router.get(
    "/health", response_model=HealthModel, responses=errors(*COMMON),
    summary="Liveness probe (no auth); per-type health is in /metrics", operation_id="get_health",
)
async def get_health() -> Response:
    return JSONBytes({"status": "ok", "timestamp": rfc3339(now())})
