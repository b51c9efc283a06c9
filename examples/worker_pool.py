"""A minimal remote worker pool for Cracker: register, long-poll for tasks, heartbeat, report.

    CRACKER_URL=http://127.0.0.1:8000 CRACKER_WORKER_KEY=ck_... python examples/worker_pool.py

Start from here to attach your own solver: replace ``solve`` (it gets the task's params and must
return a solution dict with a string ``token``, or raise ``Rejected`` with a task error code of
GET /v2/errors). The protocol is described in docs/workers.md. Needs only httpx.
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx

TYPES = ["vercel"]  # the task types this pool solves
CONCURRENCY = 4


class Rejected(Exception):
    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message)
        self.code, self.message = code, message


async def solve(task_type: str, params: dict[str, Any]) -> dict[str, Any]:
    """Your solver goes here. This one answers a fixed token after a short pause."""
    await asyncio.sleep(0.5)
    if not params:
        raise Rejected("invalid_params", "empty task")
    return {"token": f"example-token-for-{task_type}"}


class Pool:
    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http
        self.worker_id = ""
        self.heartbeat_s = 3.0
        self.working: dict[str, asyncio.Task[None]] = {}
        self.stopping = asyncio.Event()

    async def register(self) -> None:
        response = await self.http.post("/v2/workers", json={"name": "example-pool", "types": TYPES,
                                                              "concurrency": CONCURRENCY})
        response.raise_for_status()
        body = response.json()
        self.worker_id, self.heartbeat_s = body["worker_id"], body["heartbeat_interval_s"]
        print(f"registered {self.worker_id} for {body['types']}; lease {body['lease_s']} s")

    async def heartbeat(self) -> None:
        while not self.stopping.is_set():
            await asyncio.sleep(self.heartbeat_s)
            response = await self.http.post(f"/v2/workers/{self.worker_id}/heartbeat")
            if response.status_code == 404:  # the server forgot us (we stalled too long): join again
                await self.register()
                continue
            held = {lease["task_id"] for lease in response.json()["leases"]}
            for task_id, job in list(self.working.items()):
                if task_id not in held:  # lease lost (expired, or the task ended): stop wasting work
                    job.cancel()

    async def run_task(self, task: dict[str, Any]) -> None:
        url = f"/v2/workers/{self.worker_id}/tasks/{task['task_id']}"
        try:
            solution = await solve(task["type"], task["params"])
            response = await self.http.post(f"{url}/complete", json={"attempt": task["attempt"], "solution": solution})
        except Rejected as rejection:
            response = await self.http.post(f"{url}/reject", json={
                "attempt": task["attempt"], "code": rejection.code, "message": rejection.message})
        except asyncio.CancelledError:
            return
        except Exception as exc:  # a bug in the solver: report it instead of letting the lease expire
            response = await self.http.post(f"{url}/reject", json={
                "attempt": task["attempt"], "code": "general_error", "message": str(exc)[:500]})
        finally:
            self.working.pop(task["task_id"], None)
        if response.status_code == 409:
            print(f"task {task['task_id']}: lease lost, result dropped")

    async def lease_loop(self) -> None:
        while not self.stopping.is_set():
            free = CONCURRENCY - len(self.working)
            if free <= 0:
                await asyncio.sleep(0.05)
                continue
            response = await self.http.post(f"/v2/workers/{self.worker_id}/lease",
                                            json={"max_tasks": free, "wait": 20}, timeout=30)
            if response.status_code == 404:
                await self.register()
                continue
            response.raise_for_status()
            for task in response.json()["tasks"]:
                self.working[task["task_id"]] = asyncio.create_task(self.run_task(task))

    async def run(self) -> None:
        await self.register()
        beat = asyncio.create_task(self.heartbeat())
        leasing = asyncio.create_task(self.lease_loop())
        await self.stopping.wait()
        leasing.cancel()
        beat.cancel()
        # Clean shutdown: the tasks in hand go back to the queue at once for other workers.
        await self.http.delete(f"/v2/workers/{self.worker_id}")


async def main() -> None:
    base = os.environ.get("CRACKER_URL", "http://127.0.0.1:8000")
    key = os.environ["CRACKER_WORKER_KEY"]  # cracker keys create ACCOUNT_ID --scope worker
    async with httpx.AsyncClient(base_url=base, headers={"x-solvium-auth": key}, timeout=10) as http:
        pool = Pool(http)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, pool.stopping.set)
        await pool.run()


if __name__ == "__main__":
    asyncio.run(main())
