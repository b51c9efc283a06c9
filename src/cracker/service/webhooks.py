"""Use cases of webhooks: the account's signing secret, the delivery log, and the dispatcher's queue."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from cracker.domain.clock import now
from cracker.domain.errors import NotFound
from cracker.domain.tasks import TaskView
from cracker.domain.webhooks import (
    RETRY_FOR_S,
    DeliveryAttempt,
    DueDelivery,
    SigningSecrets,
    new_secret,
    next_attempt_delay,
)
from cracker.store import Reader, Store, webhooks


@dataclass(frozen=True, slots=True)
class DeliveryLog:
    delivery_id: str
    url: str
    status: str
    next_attempt_at: float | None
    attempts: list[DeliveryAttempt]


class WebhookService:
    def __init__(self, store: Store, *, backoff_scale: float = 1.0) -> None:
        self._store = store
        # Tests shrink the retry schedule; production keeps the documented one.
        self._backoff_scale = backoff_scale

    async def secret(self, account_id: str) -> str:
        candidate = new_secret()
        secret = await self._store.write(lambda tx: webhooks.set_secret_if_missing(tx, account_id, candidate))
        if secret is None:
            raise NotFound(f"No account {account_id}")
        return secret

    async def rotate_secret(self, account_id: str, overlap_s: float) -> SigningSecrets:
        """A new secret, current at once; the replaced one signs beside it for ``overlap_s``."""
        at = now()
        secret = new_secret()
        if not await self._store.write(lambda tx: webhooks.rotate_secret(tx, account_id, secret, at + overlap_s)):
            raise NotFound(f"No account {account_id}")
        secrets = await self._store.read(lambda r: webhooks.signing_secrets(r, account_id, at))
        assert secrets is not None  # written just above; accounts are never deleted
        return secrets

    async def log(self, account_id: str, task_id: str) -> list[DeliveryLog]:
        """Every delivery of a task's webhook and each of its attempts (the task must be the account's)."""

        def read(r: Reader) -> tuple[str | None, list[tuple[str, str, str, float | None, DeliveryAttempt | None]]]:
            task = r.get_task_view(task_id)
            return (task.account_id if task is not None else None), webhooks.list_attempts(r, task_id)

        owner, rows = await self._store.read(read)
        if owner != account_id:
            raise NotFound(f"No task {task_id}")
        logs: dict[str, DeliveryLog] = {}
        for delivery_id, url, status, next_at, attempt in rows:
            log = logs.setdefault(
                delivery_id, DeliveryLog(delivery_id, url, status, next_at if status == "pending" else None, [])
            )
            if attempt is not None:
                log.attempts.append(attempt)
        return list(logs.values())

    async def claim_due(
        self, limit: int, lease_s: float, *, per_account: int | None = None, in_flight: Mapping[str, int] | None = None
    ) -> list[DueDelivery]:
        """Lease up to ``limit`` due deliveries, at most ``per_account`` in flight per account
        (counting ``in_flight``, the caller's own running ones)."""
        at = now()
        return await self._store.write(
            lambda tx: webhooks.claim_due(tx, limit, lease_s, at, per_account=per_account, in_flight=in_flight)
        )

    async def payload_of(self, delivery: DueDelivery) -> tuple[TaskView | None, SigningSecrets]:
        """The task as it is now and the account's secrets, to build and sign the body."""
        at = now()

        def read(r: Reader) -> tuple[TaskView | None, SigningSecrets | None]:
            return r.get_task_view(delivery.task_id), webhooks.signing_secrets(r, delivery.account_id, at)

        task, secrets = await self._store.read(read)
        if secrets is None:  # the account never asked for its secret: make it, as that route would
            secrets = SigningSecrets(await self.secret(delivery.account_id))
        return task, secrets

    async def record(self, delivery: DueDelivery, attempt: DeliveryAttempt, *, delivered: bool) -> str:
        """Log the attempt and decide what follows: delivered, another try later, or given up."""
        if delivered:
            status, next_at = "delivered", attempt.at
        else:
            next_at = attempt.at + next_attempt_delay(attempt.attempt) * self._backoff_scale
            status = "failed" if next_at - delivery.created_at > RETRY_FOR_S else "pending"
        await self._store.write(
            lambda tx: webhooks.record_attempt(tx, delivery, attempt, status=status, next_attempt_at=next_at)
        )
        return status
