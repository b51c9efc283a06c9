"""Use cases of pool trust: which task types an account's pools may serve (the operator's grants),
and the history of what remote pools did to a task.

A worker key is a credential any account can hold, and a pool that leases a task reads its
parameters (images, challenges, proxy credentials) whatever account sent it. So by default a pool
serves only the types that need one (``DEFAULT_POOL_TYPES``); an operator grants more per account.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cracker.domain.clock import now
from cracker.domain.errors import NotFound, PoolTypeNotAllowed
from cracker.domain.tasks import Task
from cracker.domain.workers import PoolGrant, TaskEvent, allowed_pool_types
from cracker.store import Reader, Store, Writer, pools


@dataclass(frozen=True, slots=True)
class TaskHistory:
    task: Task
    events: list[TaskEvent]


class PoolPolicyService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def grant(self, account_id: str, *, types: Sequence[str] = (), all_types: bool = False) -> PoolGrant:
        """Replace the account's grant: its pools may serve ``types`` (or every type) beyond the default."""
        grant = PoolGrant(account_id=account_id, all_types=all_types, types=tuple(sorted(set(types))),
                          updated_at=now())

        def work(tx: Writer) -> None:
            if not tx.account_exists(account_id):
                raise NotFound(f"No account {account_id}")
            pools.set_grant(tx, grant)

        await self._store.write(work)
        return grant

    async def reset(self, account_id: str) -> None:
        """Drop the account's grant: its pools are back to the default types."""

        def work(tx: Writer) -> None:
            if not tx.account_exists(account_id):
                raise NotFound(f"No account {account_id}")
            pools.delete_grant(tx, account_id)

        await self._store.write(work)

    async def get(self, account_id: str) -> PoolGrant | None:
        def read(r: Reader) -> tuple[bool, PoolGrant | None]:
            return r.account_exists(account_id), pools.get_grant(r, account_id)

        exists, grant = await self._store.read(read)
        if not exists:
            raise NotFound(f"No account {account_id}")
        return grant

    async def limit(self, pool_account_id: str, accounts: Sequence[str] | None) -> list[str] | None:
        """Limit the account's pools to tasks of ``accounts`` (replacing any earlier limit); None:
        every account's tasks again. Returns the limit now in force."""
        wanted = sorted(set(accounts)) if accounts is not None else None

        def work(tx: Writer) -> None:
            missing = [a for a in [pool_account_id, *(wanted or ())] if not tx.account_exists(a)]
            if missing:
                raise NotFound(f"No account {', '.join(sorted(set(missing)))}")
            pools.set_served_accounts(tx, pool_account_id, wanted)

        await self._store.write(work)
        return wanted

    async def served_accounts(self, pool_account_id: str) -> list[str] | None:
        """The accounts whose tasks the account's pools may lease; None: every account's."""

        def read(r: Reader) -> tuple[bool, list[str] | None]:
            return r.account_exists(pool_account_id), pools.served_accounts(r, pool_account_id)

        exists, served = await self._store.read(read)
        if not exists:
            raise NotFound(f"No account {pool_account_id}")
        return served

    async def lease_scope(self, account_id: str | None) -> tuple[frozenset[str], list[str] | None]:
        """What a pool of the account may lease now, in one read: (types, accounts or None for any)."""
        if account_id is None:
            return allowed_pool_types(None), None

        def read(r: Reader) -> tuple[PoolGrant | None, list[str] | None]:
            return pools.get_grant(r, account_id), pools.served_accounts(r, account_id)

        grant, served = await self._store.read(read)
        return allowed_pool_types(grant), served

    async def allowed_types(self, account_id: str | None) -> frozenset[str]:
        grant = await self._store.read(lambda r: pools.get_grant(r, account_id)) if account_id else None
        return allowed_pool_types(grant)

    async def check(self, account_id: str, types: Sequence[str]) -> None:
        """Refuse (403 ``pool_type_not_allowed``, naming them) the types the account's pools may not serve."""
        allowed = await self.allowed_types(account_id)
        refused = sorted(set(types) - allowed)
        if refused:
            raise PoolTypeNotAllowed(
                f"This account's worker pools may not serve {', '.join(refused)}: a worker key serves "
                f"{', '.join(sorted(allowed))}; an operator may allow more "
                f"(cracker pools allow {account_id} --types {','.join(refused)})"
            )

    async def record(self, events: Sequence[TaskEvent]) -> None:
        if events:
            await self._store.write(lambda tx: pools.record_events(tx, events))

    async def release(self, owner: str, task_ids: Sequence[str]) -> int:
        return await self._store.write(lambda tx: pools.release_leases(tx, owner, task_ids))

    async def history(self, task_id: str) -> TaskHistory:
        def read(r: Reader) -> tuple[Task | None, list[TaskEvent]]:
            return r.get_task(task_id), pools.task_history(r, task_id)

        task, events = await self._store.read(read)
        if task is None:
            raise NotFound(f"No task {task_id}")
        return TaskHistory(task=task, events=events)
