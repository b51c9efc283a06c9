"""Response models: they document the wire shapes in /openapi.json (handlers build the JSON directly)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cracker.domain.reports import MAX_EXPECTED_CHARS


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


class OcrModelEntry(BaseModel):
    name: str = Field(description="What an image-to-text task sends in ``model``")
    score: float | None = Field(
        description="Sequence accuracy on the held-out part of the images it was fine-tuned on; null for general"
    )
    created_at: str | None = Field(description="When it was registered; null for the shipped general model")


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
    models: list[OcrModelEntry] | None = Field(
        default=None,
        description="image-to-text: the OCR models a task may name in ``model``, the general one first; "
        "null for other types",
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


class ReportRequest(BaseModel):
    """A report of a completed task's answer."""

    model_config = ConfigDict(extra="forbid", strict=True)

    correct: bool = Field(description="true: the answer was accepted; false: it was wrong (refunded within "
                          "the operator's share)")
    expected: str | None = Field(
        default=None, min_length=1, max_length=MAX_EXPECTED_CHARS, pattern=r"^[^\x00-\x1f\x7f]+$",
        description="image-to-text only, with correct=false: the text the image shows. The image is then kept, "
        "with this text, to fine-tune the model that read it",
        examples=["W7KQ"],
    )


class ReportModel(BaseModel):
    """What a report did."""

    task_id: str
    correct: bool
    refunded: bool = Field(description="The task's cost was given back (a refund row in the ledger)")
    refund: str = Field(description="USD refunded, 4 decimals; \"0.0000\" when not refunded", examples=["0.0009"])
    refund_refused: Literal["share_exceeded", "no_cost"] | None = Field(
        description="Why an incorrect report was not refunded: share_exceeded (this account's refunds of the "
        "task type reached the operator's share of its recent tasks) or no_cost (the task cost nothing); "
        "null when refunded or reported correct",
    )
    labelled: bool = Field(description="The task's image is kept with its right text for fine-tuning")
    balance: str = Field(description="The account's balance after the report, USD", examples=["9.9991"])
    currency: Literal["USD"] = "USD"
    reported_at: str
