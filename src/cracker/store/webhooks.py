"""SQL of webhook deliveries: an outbox row per terminal task with a callback, and its attempt log."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, literal, or_, select, update

from cracker.domain.webhooks import DeliveryAttempt, DueDelivery, SigningSecrets
from cracker.store.schema import accounts, webhook_attempts, webhook_deliveries
from cracker.store.units import Reader, Writer, skip_locked_pick


def enqueue_delivery(tx: Writer, delivery_id: str, task_id: str, account_id: str, url: str, at: float) -> None:
    """Written in the transaction that ends the task, so a terminal task never lacks its delivery."""
    tx.conn.execute(
        insert(webhook_deliveries).values(
            id=delivery_id, task_id=task_id, account_id=account_id, url=url, status="pending", attempts=0,
            next_attempt_at=at, created_at=at,
        )
    )


def claim_due(
    tx: Writer, limit: int, lease_s: float, at: float, *, per_account: int | None = None,
    in_flight: Mapping[str, int] | None = None,
) -> list[DueDelivery]:
    """Lease due deliveries so that two dispatchers (two API processes) never send the same one.

    The due rows are picked once, with SKIP LOCKED on PostgreSQL (``skip_locked_pick``): at most
    ``limit`` of them, and none that another dispatcher is leasing right now.

    With ``per_account``, an account gets at most that many deliveries in flight, counting the
    ``in_flight`` ones this dispatcher already runs: accounts already at their limit are skipped
    in SQL (so that thousands of one account's due deliveries never hide another account's), and
    the others are ranked within the account so that one claim cannot take more than its share.
    """
    conditions = [
        webhook_deliveries.c.status == "pending",
        webhook_deliveries.c.next_attempt_at <= at,
        or_(webhook_deliveries.c.lease_until.is_(None), webhook_deliveries.c.lease_until < at),
    ]
    if per_account is None:
        due = select(webhook_deliveries.c.id).where(*conditions).order_by(webhook_deliveries.c.next_attempt_at)
        picked = skip_locked_pick(tx.conn, webhook_deliveries.c.id, due.limit(limit))
    else:
        picked = _fair_pick(tx, conditions, limit, per_account, in_flight or {})
    rows = tx.conn.execute(
        update(webhook_deliveries)
        .where(picked)
        .values(lease_until=at + lease_s)
        .returning(
            webhook_deliveries.c.id, webhook_deliveries.c.task_id, webhook_deliveries.c.account_id,
            webhook_deliveries.c.url, webhook_deliveries.c.attempts, webhook_deliveries.c.created_at,
        )
    )
    return [DueDelivery(r.id, r.task_id, r.account_id, r.url, r.attempts, r.created_at) for r in rows]


def _fair_pick(
    tx: Writer, conditions: list[ColumnElement[bool]], limit: int, per_account: int, in_flight: Mapping[str, int]
) -> ColumnElement[bool]:
    """``id IN (...)`` of at most ``limit`` due rows, at most each account's remaining allowance."""
    busy = {account: n for account, n in in_flight.items() if n > 0}
    full = [account for account, n in busy.items() if n >= per_account]
    if full:
        conditions = [*conditions, webhook_deliveries.c.account_id.not_in(full)]
    # A window of candidates a few times the claim: enough for every account in it to get its
    # share, small enough that the ranking stays cheap whatever the backlog. On PostgreSQL it is
    # locked (SKIP LOCKED) and materialised once, as skip_locked_pick does: a window function
    # cannot share a level with FOR UPDATE, and a plain subquery may be run again per row.
    window_query = (
        select(webhook_deliveries.c.id, webhook_deliveries.c.account_id, webhook_deliveries.c.next_attempt_at)
        .where(*conditions)
        .order_by(webhook_deliveries.c.next_attempt_at)
        .limit(limit * 8)
    )
    if tx.conn.dialect.name == "postgresql":
        window: Any = window_query.with_for_update(skip_locked=True).cte("window").prefix_with("MATERIALIZED")
    else:
        window = window_query.subquery()
    ranked = select(
        window.c.id, window.c.next_attempt_at,
        func.row_number().over(partition_by=window.c.account_id, order_by=(window.c.next_attempt_at, window.c.id))
        .label("rank"),
        window.c.account_id,
    ).subquery()
    partly_busy = {account: per_account - n for account, n in busy.items() if n < per_account}
    allowance: ColumnElement[int] = (
        case(partly_busy, value=ranked.c.account_id, else_=per_account) if partly_busy else literal(per_account)
    )
    due = select(ranked.c.id).where(ranked.c.rank <= allowance).order_by(ranked.c.next_attempt_at).limit(limit)
    return webhook_deliveries.c.id.in_(due.scalar_subquery())


def record_attempt(
    tx: Writer, delivery: DueDelivery, attempt: DeliveryAttempt, *, status: str, next_attempt_at: float
) -> None:
    tx.conn.execute(
        insert(webhook_attempts).values(
            delivery_id=delivery.id, task_id=delivery.task_id, attempt=attempt.attempt, at=attempt.at,
            status_code=attempt.status_code, error=attempt.error, duration_ms=attempt.duration_ms,
        )
    )
    tx.conn.execute(
        update(webhook_deliveries)
        .where(webhook_deliveries.c.id == delivery.id)
        .values(status=status, attempts=attempt.attempt, next_attempt_at=next_attempt_at, lease_until=None)
    )


def list_attempts(r: Reader, task_id: str) -> list[tuple[str, str, str, float | None, DeliveryAttempt | None]]:
    """(delivery id, url, status, next attempt at, attempt) rows of a task, attempts oldest first;
    a delivery not tried yet appears once with attempt None."""
    rows = r.conn.execute(
        select(
            webhook_deliveries.c.id, webhook_deliveries.c.url, webhook_deliveries.c.status,
            webhook_deliveries.c.next_attempt_at, webhook_attempts.c.attempt, webhook_attempts.c.at,
            webhook_attempts.c.status_code, webhook_attempts.c.error, webhook_attempts.c.duration_ms,
        )
        .select_from(
            webhook_deliveries.outerjoin(
                webhook_attempts, and_(webhook_attempts.c.delivery_id == webhook_deliveries.c.id)
            )
        )
        .where(webhook_deliveries.c.task_id == task_id)
        .order_by(webhook_deliveries.c.created_at, webhook_attempts.c.attempt)
    )
    out: list[tuple[str, str, str, float | None, DeliveryAttempt | None]] = []
    for row in rows:
        attempt = None
        if row.attempt is not None:
            attempt = DeliveryAttempt(row.id, row.attempt, row.at, row.status_code, row.error, row.duration_ms)
        out.append((row.id, row.url, row.status, row.next_attempt_at, attempt))
    return out


def account_secret(r: Reader, account_id: str) -> str | None:
    row = r.conn.execute(select(accounts.c.webhook_secret).where(accounts.c.id == account_id)).first()
    return row.webhook_secret if row is not None else None


def signing_secrets(r: Reader, account_id: str, at: float) -> SigningSecrets | None:
    """The secrets that sign a delivery at ``at``: the current one, and the previous one while its
    overlap lasts. None when the account has no secret yet (or does not exist)."""
    row = r.conn.execute(
        select(accounts.c.webhook_secret, accounts.c.webhook_secret_previous, accounts.c.webhook_secret_previous_until)
        .where(accounts.c.id == account_id)
    ).first()
    if row is None or row.webhook_secret is None:
        return None
    until = row.webhook_secret_previous_until
    if row.webhook_secret_previous is None or until is None or until <= at:
        return SigningSecrets(row.webhook_secret)
    return SigningSecrets(row.webhook_secret, row.webhook_secret_previous, until)


def rotate_secret(tx: Writer, account_id: str, secret: str, previous_until: float) -> bool:
    """Make ``secret`` current; the one it replaces keeps signing until ``previous_until``.

    An account rotated twice within an overlap keeps only the latest previous secret: receivers
    are expected to take the newest secret, and two old ones would double what a leak exposes.
    False for an unknown account.
    """
    changed = tx.conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id)
        .values(
            webhook_secret_previous=accounts.c.webhook_secret,
            # An account that never had a secret has nothing to overlap with.
            webhook_secret_previous_until=case((accounts.c.webhook_secret.is_(None), None), else_=previous_until),
            webhook_secret=secret,
        )
    ).rowcount
    return bool(changed)


def set_secret_if_missing(tx: Writer, account_id: str, secret: str) -> str | None:
    """The account's secret, making it ``secret`` if it had none; None for an unknown account."""
    tx.conn.execute(
        update(accounts)
        .where(accounts.c.id == account_id, accounts.c.webhook_secret.is_(None))
        .values(webhook_secret=secret)
    )
    return account_secret(tx, account_id)
