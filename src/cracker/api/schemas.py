"""Response models: they document the wire shapes in /openapi.json (handlers build the JSON directly)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field


class FieldErrorModel(BaseModel):
    field: str = Field(examples=["url"])
    code: str = Field(examples=["string_pattern_mismatch"])
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code; see GET /v2/errors", examples=["not_found"])
    message: str = Field(description="Human-readable summary. Safe to log, do not parse.")
    retryable: bool
    doc_url: str
    request_id: str = Field(description="UUIDv7; include it in support tickets")
    details: list[FieldErrorModel] | None = Field(
        default=None,
        description="Per-field errors; only on validation_failed; at most 50 (the message says how many more failed)",
    )


class ErrorEnvelope(BaseModel):
    error: ErrorBody


class V1Error(BaseModel):
    """A legacy v1 error: ``message`` is what v1 clients read; a missing or bad key is exactly
    ``{"message": "Unauthorized"}``, every other error also carries the v2 ``error`` object."""

    message: str = Field(examples=["Unauthorized"])
    error: ErrorBody | None = None


class TaskError(BaseModel):
    code: str = Field(examples=["solve_timeout"])
    message: str
    retryable: bool
    doc_url: str


class TaskEnvelope(BaseModel):
    """The same envelope in every state; inapplicable fields are null."""

    task_id: str = Field(examples=["01959e02-08fd-7000-8cbe-f682a959b3c1"])
    type: str = Field(examples=["altcha"])
    status: Literal["pending", "running", "completed", "rejected"]
    solution: dict[str, Any] | None = Field(
        description="Set when completed; always has a string `token`", examples=[{"token": "eyJhbGci..."}]
    )
    error: TaskError | None = Field(description="Set when rejected")
    cost: str | None = Field(description="USD, 4 decimals; null while unknown", examples=["0.0002"])
    created_at: str
    started_at: str | None
    completed_at: str | None


class BalanceModel(BaseModel):
    balance: str = Field(description="What can still be spent, USD", examples=["9.9991"])
    held: str = Field(description="Held for open tasks, USD", examples=["0.0009"])
    currency: Literal["USD"] = "USD"


class HealthModel(BaseModel):
    status: Literal["ok"] = "ok"
    timestamp: str


class OfferModel(BaseModel):
    type: str
    price: str = Field(examples=["0.0009"])
    currency: Literal["USD"] = "USD"
    solved_by: Literal["built-in", "sandbox", "pool"] = Field(
        description="built-in: our own solver; sandbox: the vendor's test keys only; pool: attached workers"
    )
    description: str
    work_limit: str | None = Field(
        default=None,
        description="Proof of work: the most work spent before the task is rejected (no_solution); "
        "the task's deadline bounds it too",
    )


class OffersModel(BaseModel):
    offers: list[OfferModel]


class CatalogueEntry(BaseModel):
    code: str
    kind: Literal["api", "task"]
    http_status: int | None = Field(description="HTTP status of an API error; null for task errors")
    retryable: bool
    charged: bool = Field(description="A task rejected with this code keeps its price")
    category: str
    message: str
    fix: str
    doc_url: str


class CatalogueModel(BaseModel):
    errors: list[CatalogueEntry]


class DeliveryAttemptModel(BaseModel):
    attempt: int
    at: str
    status_code: int | None = Field(description="The receiver's HTTP status; null when no answer came")
    error: str | None
    duration_ms: int


class DeliveryModel(BaseModel):
    delivery_id: str
    url: str
    status: Literal["pending", "delivered", "failed"]
    next_attempt_at: str | None
    attempts: list[DeliveryAttemptModel]


class DeliveriesModel(BaseModel):
    deliveries: list[DeliveryModel]


class WebhookSecretModel(BaseModel):
    secret: str = Field(description="HMAC-SHA256 key of this account's webhook signatures")
    header: str = Field(description="The header that carries the signature")
    scheme: str = Field(description="How the signature is computed")
    previous_valid_until: str | None = Field(
        default=None, description="After a rotation: until when (RFC 3339) the replaced secret still signs, "
        "as a second v1= value; null when no previous secret signs"
    )


class RotateSecretRequest(BaseModel):
    overlap_s: float | None = Field(
        default=None, ge=0, le=7 * 24 * 3600,
        description="How long the replaced secret keeps signing beside the new one (default: the server's "
        "setting, 24 h unless the operator changed it); 0 drops it at once",
    )


class ApiKeyModel(BaseModel):
    key_id: str
    account_id: str
    prefix: str = Field(description="The key's first characters, to recognise it; the key itself is never shown again")
    scope: Literal["client", "worker", "admin"]
    created_at: str
    revoked_at: str | None


class ApiKeyListModel(BaseModel):
    keys: list[ApiKeyModel]


class CreateKeyRequest(BaseModel):
    scope: Literal["client", "worker", "admin"] = "client"


class IssuedKeyModel(BaseModel):
    key_id: str
    account_id: str
    scope: Literal["client", "worker", "admin"]
    api_key: str = Field(description="Shown once: Cracker stores only its hash")


class BatchItemResult(BaseModel):
    status: int = Field(description="The status a single create of this item would have answered: 201 when "
                        "created, else the error's", examples=[201])
    task: TaskEnvelope | None = Field(description="The created task; null when the item got an error")
    error: ErrorBody | None = Field(description="Why the item was not created; null when it was")


class BatchResponse(BaseModel):
    results: list[BatchItemResult] = Field(description="One per item, in the order sent")
