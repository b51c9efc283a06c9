"""SQL of API keys beyond authentication: listing an account's keys and revoking one."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from cracker.domain.accounts import ApiKeyInfo, Scope
from cracker.store.schema import api_keys
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
