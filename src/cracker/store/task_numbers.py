"""Task numbers: the integer ids the captcha-vendor protocols hand out, kept on the task row itself."""

from __future__ import annotations

from sqlalchemy import bindparam, select

from cracker.store.schema import tasks
from cracker.store.units import Reader

_NUMBER_OF = select(tasks.c.number).where(tasks.c.id == bindparam("p_id"))
_ID_OF = select(tasks.c.id).where(tasks.c.number == bindparam("p_number"), tasks.c.account_id == bindparam("p_account"))


def number_of(r: Reader, task_id: str) -> int | None:
    value = r.conn.execute(_NUMBER_OF, {"p_id": task_id}).scalar()
    return int(value) if value is not None else None


def id_of(r: Reader, account_id: str, number: int) -> str | None:
    """The account's task of that number (another account's is as unknown as a missing one)."""
    value = r.conn.execute(_ID_OF, {"p_number": number, "p_account": account_id}).scalar()
    return str(value) if value is not None else None
