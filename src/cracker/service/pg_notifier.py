"""Wake-ups across processes on PostgreSQL: the in-process Notifier, relayed by LISTEN/NOTIFY.

A task created in API process A wakes the workers of process B; a task finished by worker
process B wakes the long-poll waiters of API process A. Local waiters are woken at once, as on
SQLite; the other processes hear of it one NOTIFY later.
"""

from __future__ import annotations

from cracker.service.events import Notifier
from cracker.store.notify import PgNotifyChannel

#: "There are new pending tasks" (no payload).
WORK_CHANNEL = "cracker_work"
#: "These tasks turned terminal": comma-separated task ids.
FINISHED_CHANNEL = "cracker_finished"


class PostgresNotifier(Notifier):
    def __init__(self, url: str, *, connect_timeout_s: float = 5.0) -> None:
        super().__init__()
        self._channel = PgNotifyChannel(
            url,
            {WORK_CHANNEL: self._on_work, FINISHED_CHANNEL: self._on_finished},
            on_reconnect=self._wake_everyone,
            connect_timeout_s=connect_timeout_s,
        )

    async def start(self) -> None:
        await self._channel.start()

    async def close(self) -> None:
        await self._channel.close()

    def task_created(self) -> None:
        super().task_created()
        self._channel.notify(WORK_CHANNEL)

    def task_finished(self, task_id: str) -> None:
        super().task_finished(task_id)
        self._channel.notify(FINISHED_CHANNEL, task_id)

    def _on_work(self, _payload: str) -> None:
        super().task_created()

    def _on_finished(self, payload: str) -> None:
        for task_id in payload.split(","):
            if task_id:
                super().task_finished(task_id)

    def _wake_everyone(self) -> None:
        # Notifications sent while we were disconnected are lost: every waiter re-checks.
        self.forget_unfinished()
        super().task_created()
        for task_id in list(self._finished):
            super().task_finished(task_id)


def notifier_for(database_url: str, *, connect_timeout_s: float = 5.0) -> Notifier:
    """Cross-process wake-ups on PostgreSQL; in-process ones on SQLite (one process serves it)."""
    from cracker.store.engines import is_sqlite

    if is_sqlite(database_url):
        return Notifier()
    return PostgresNotifier(database_url, connect_timeout_s=connect_timeout_s)
