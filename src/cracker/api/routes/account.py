"""Account and status routes: balance, the webhook secret and its rotation, health."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body
from starlette.responses import Response

from cracker.api.deps import ClientKey, RuntimeDep
from cracker.api.envelope import JSONBytes
from cracker.api.responses import AUTH, COMMON, errors
from cracker.api.schemas import BalanceModel, HealthModel, RotateSecretRequest, WebhookSecretModel
from cracker.domain.clock import now, rfc3339
from cracker.domain.money import format_usd
from cracker.domain.webhooks import SIGNATURE_HEADER, SigningSecrets

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
    return JSONBytes(_secret_json(SigningSecrets(secret)))


@router.post(
    "/webhooks/secret/rotate", response_model=WebhookSecretModel,
    responses=errors(*AUTH, *COMMON, "validation_failed"),
    summary="Replace the webhook secret; the old one signs beside it (a second v1=) until the overlap ends",
    operation_id="rotate_webhook_secret",
)
async def rotate_webhook_secret(
    runtime: RuntimeDep, key: ClientKey, body: Annotated[RotateSecretRequest | None, Body()] = None,
) -> Response:
    overlap_s = body.overlap_s if body is not None and body.overlap_s is not None else None
    secrets = await runtime.webhooks.rotate_secret(
        key.account_id, runtime.settings.webhook_secret_overlap_s if overlap_s is None else overlap_s
    )
    return JSONBytes(_secret_json(secrets))


def _secret_json(secrets: SigningSecrets) -> dict[str, str | None]:
    return {
        "secret": secrets.current, "header": SIGNATURE_HEADER,
        "scheme": 't=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>[,v1=<same with the previous '
        "secret, during a rotation's overlap>]",
        "previous_valid_until": rfc3339(secrets.previous_until) if secrets.previous_until is not None else None,
    }


@router.get(
    "/health", response_model=HealthModel, responses=errors(*COMMON),
    summary="Liveness probe (no auth); per-type health is in /metrics", operation_id="get_health",
)
async def get_health() -> Response:
    return JSONBytes({"status": "ok", "timestamp": rfc3339(now())})
