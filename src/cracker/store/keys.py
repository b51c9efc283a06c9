"""SQL of API keys beyond the hot lookup: how many an account holds."""

from __future__ import annotations

from sqlalchemy import func, select

from cracker.store.schema import accounts, api_keys
from cracker.store.sql import Writer


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
