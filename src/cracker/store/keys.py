"""SQL of API keys beyond authentication: listing an account's keys, counting them, revoking one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update

from cracker.domain.accounts import ApiKeyInfo, Scope
from cracker.store.schema import accounts, api_keys
from cracker.store.units import Reader, Writer

_COLUMNS = (api_keys.c.id, api_keys.c.account_id, api_keys.c.prefix, api_keys.c.scope, api_keys.c.created_at,
            api_keys.c.revoked_at)


def _info(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(row.id, row.account_id, row.prefix, Scope(row.scope), row.created_at, row.revoked_at)


def list_keys(r: Reader, account_id: str) -> list[ApiKeyInfo]:
    """The account's keys, revoked ones included (an audit wants both), oldest first."""
    rows = r.conn.execute(select(*_COLUMNS).where(api_keys.c.account_id == account_id).order_by(api_keys.c.created_at))
    return [_info(row) for row in rows]


def revoke_key(tx: Writer, key_id: str, at: float) -> ApiKeyInfo | None:
    """Mark the key revoked (authentication skips revoked keys at once); revoking twice keeps the
    first time. None for an unknown key."""
    tx.conn.execute(
        update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None)).values(revoked_at=at)
    )
    row = tx.conn.execute(select(*_COLUMNS).where(api_keys.c.id == key_id)).first()
    return _info(row) if row is not None else None


def count_active_keys_locked(tx: Writer, account_id: str) -> int:
    """Keys of the account not revoked. On PostgreSQL the account's row is locked first, so that
    two concurrent creates cannot both see room for one more key (SQLite writes one at a time)."""
    if tx.conn.dialect.name == "postgresql":
        tx.conn.execute(select(accounts.c.id).where(accounts.c.id == account_id).with_for_update())
    count = tx.conn.execute(
        select(func.count()).select_from(api_keys).where(
            api_keys.c.account_id == account_id, api_keys.c.revoked_at.is_(None)
        )
    ).scalar_one()
    return int(count)
