"""PostgreSQL faults under load: the database restarted, then refusing new connections for ten
seconds, while a client creates and polls tasks at about 20 a second.

Protects what a client and an operator rely on when the database goes away (issue 24):
- every answer is the JSON envelope: 201/200, or ``503 service_unavailable`` with ``retryable:
  true``; never a 500, never a body that is not JSON, never an answer slower than the client's
  timeout (connect and pool waits are bounded);
- the service recovers by itself within seconds of the database coming back (the pools drop dead
  connections, the LISTEN connection reconnects, the ``cracker worker`` process lives on);
- afterwards every acknowledged (201) task exists and ends, and the ledger audit holds.

The faults run on a private PostgreSQL cluster started for the test (tests/acceptance/private_pg.py):
the machine's shared server serves other tests meanwhile. About 60 s.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cluster import Cluster, free_port
from private_pg import PrivateServer, unavailable_reason

from cracker.store import audit, open_store
from tests.acceptance.ledger_check import books_of

#: The client's timeout: no answer may take longer (the server bounds its own waits well below).
CLIENT_TIMEOUT_S = 8.0
#: Creations and polls offered per second, together.
RATE = 20.0
#: The database must serve again within this many seconds of coming back.
RECOVERY_BOUND_S = 5.0
REFUSE_S = 10.0
#: Sandbox test key that the turnstile solver completes at once.
COMPLETES = {"url": "https://a.example", "site_key": "1x00000000000000000000AA"}


@dataclass
class Answer:
    at: float
    kind: str  # "create" | "poll"
    status: int | None  # None: no HTTP answer (transport error or timeout)
    code: str | None = None
    retryable: bool | None = None
    seconds: float = 0.0
    problem: str | None = None  # what was wrong with the body, if anything


@dataclass
class Load:
    port: int
    key: str
    answers: list[Answer] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    started: float = field(default_factory=time.monotonic)

    async def run(self) -> None:
        rng = random.Random(24)
        interval = 1 / RATE
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.port}", timeout=CLIENT_TIMEOUT_S,
                                     headers={"x-solvium-auth": self.key}) as http:
            pending: set[asyncio.Task[None]] = set()
            while not self.stop.is_set():
                poll = self.acked and rng.random() < 0.4
                call = self._poll(http, rng.choice(self.acked)) if poll else self._create(http)
                task = asyncio.create_task(call)
                pending.add(task)
                task.add_done_callback(pending.discard)
                await asyncio.sleep(interval)
            await asyncio.gather(*pending)

    async def _create(self, http: httpx.AsyncClient) -> None:
        answer = await self._call("create", http.post("/v2/tasks/turnstile", json=COMPLETES))
        if answer is not None and answer.status == 201:
            self.acked.append(answer.code or "")

    async def _poll(self, http: httpx.AsyncClient, task_id: str) -> None:
        await self._call("poll", http.get(f"/v2/tasks/{task_id}"))

    async def _call(self, kind: str, request: object) -> Answer | None:
        started = time.monotonic()
        answer = Answer(at=started, kind=kind, status=None)
        try:
            response: httpx.Response = await request  # type: ignore[misc]
        except httpx.HTTPError as exc:
            answer.problem = f"{type(exc).__name__}: {exc}"
            answer.seconds = time.monotonic() - started
            self.answers.append(answer)
            return None
        answer.seconds = time.monotonic() - started
        answer.status = response.status_code
        try:
            body = response.json()
        except ValueError:
            answer.problem = f"not JSON ({response.headers.get('content-type')}): {response.text[:80]!r}"
            self.answers.append(answer)
            return answer
        if response.status_code in (200, 201):
            if "task_id" not in body:
                answer.problem = f"no task_id in {body!r:.120}"
            answer.code = body.get("task_id")  # for creates: the id acknowledged
        else:
            error = body.get("error") if isinstance(body, dict) else None
            if not isinstance(error, dict):
                answer.problem = f"no error envelope in {body!r:.120}"
            else:
                answer.code, answer.retryable = error.get("code"), error.get("retryable")
        self.answers.append(answer)
        return answer


def _recovery_s(answers: list[Answer], back_at: float, until: float) -> float | None:
    """Seconds from the database being back to the end of the last failed request (0 when none
    failed after it); None when no request succeeded after it at all."""
    after = [a for a in answers if back_at <= a.at < until]
    if not any(a.status in (200, 201) for a in after):
        return None
    failed = [a.at + a.seconds - back_at for a in after if a.status not in (200, 201)]
    return max(failed, default=0.0)


@pytest.fixture
def private_server() -> Iterator[PrivateServer]:
    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    server = PrivateServer(free_port())
    try:
        server.init()
        server.start()
        server.psql("CREATE DATABASE cracker")
        yield server
    finally:
        server.destroy()


async def _first_task(port: int, key: str) -> str:
    """A created task, once the worker process has registered (until then: no_solver_available)."""
    async with httpx.AsyncClient(timeout=CLIENT_TIMEOUT_S) as http:
        for _ in range(100):
            response = await http.post(f"http://127.0.0.1:{port}/v2/tasks/turnstile", json=COMPLETES,
                                       headers={"x-solvium-auth": key})
            if response.status_code == 201:
                task_id: str = response.json()["task_id"]
                return task_id
            await asyncio.sleep(0.2)
    raise AssertionError(f"no task could be created: {response.status_code} {response.text}")


async def _drive(cluster_: Cluster, server: PrivateServer, port: int, key: str, figures: dict[str, object]) -> Load:
    load = Load(port, key)
    load.acked.append(await _first_task(port, key))
    runner = asyncio.create_task(load.run())
    await asyncio.sleep(4)

    # (a) Restart: every session cut, the port closed, the server starting up, back.
    restart_at = time.monotonic()
    figures["restart_s"] = await asyncio.to_thread(server.restart)
    restart_back = time.monotonic()
    await asyncio.sleep(6)

    # (b) Refusing: the server up, every new connection rejected, the open ones cut, for 10 s.
    refuse_at = time.monotonic()
    await asyncio.to_thread(server.refuse)
    await asyncio.sleep(REFUSE_S)
    await asyncio.to_thread(server.accept)
    refuse_back = time.monotonic()
    await asyncio.sleep(6)
    load.stop.set()
    await runner

    end = time.monotonic()
    faults = (("restart", restart_at, restart_back, refuse_at), ("refuse", refuse_at, refuse_back, end))
    for name, start, back, until in faults:
        print(f"  {name}: from +{start - load.started:.2f} s to +{back - load.started:.2f} s")
        window = [a for a in load.answers if start <= a.at <= back]
        figures[f"{name}_503"] = sum(a.status == 503 for a in window)
        figures[f"{name}_requests"] = len(window)
        figures[f"{name}_recovery_s"] = _recovery_s(load.answers, back, until)
    return load


def test_database_restart_and_refusal_answer_503_and_recover(private_server: PrivateServer, tmp_path: Path) -> None:
    """Under load, a PostgreSQL restart and ten seconds of refused connections: every answer is
    201/200 or a retryable 503 envelope, none over the client's timeout; the service recovers by
    itself; every acknowledged task exists and ends; the ledger audit holds; the worker lives on."""
    url = private_server.url.rsplit("/", 1)[0] + "/cracker"
    cluster_ = Cluster(url, tmp_path, env_extra={
        "CRACKER_LEASE_S": "2", "CRACKER_REAPER_INTERVAL_S": "0.25", "CRACKER_AUTH_CACHE_S": "1",
    })
    figures: dict[str, object] = {}
    try:
        cluster_.migrate()
        _, key = cluster_.new_account("1000.00")
        port = free_port()
        cluster_.start_api(port)
        cluster_.start_worker(0)
        cluster_.wait_healthy(port)
        started = time.monotonic()
        load = asyncio.run(_drive(cluster_, private_server, port, key, figures))
        figures["load_s"] = round(time.monotonic() - started, 1)
        api_alive = cluster_.apis[port].poll() is None
        worker = cluster_.workers[0]
        worker_alive = worker is not None and worker.poll() is None
        missing, not_done, report, ledger_ok = asyncio.run(_settle(url, load.acked))
    finally:
        cluster_.stop()
    answers = load.answers
    statuses = Counter((a.kind, a.status, a.code if a.status not in (200, 201) else None) for a in answers)
    slowest = max(a.seconds for a in answers)
    print(f"\ndatabase faults: {len(answers)} requests in {figures['load_s']} s at ~{RATE:.0f}/s, "
          f"{len(load.acked)} tasks acknowledged; answers {dict(statuses)}")
    print(f"  restart: pg_ctl restart took {figures['restart_s']:.1f} s; {figures['restart_503']} of "
          f"{figures['restart_requests']} requests in the window answered 503; last 503 "
          f"{figures['restart_recovery_s']:.2f} s after the server was back")
    print(f"  refuse {REFUSE_S:.0f} s: {figures['refuse_503']} of {figures['refuse_requests']} requests answered 503; "
          f"last 503 {figures['refuse_recovery_s']:.2f} s after connections were accepted again")
    print(f"  slowest answer {slowest:.2f} s (client timeout {CLIENT_TIMEOUT_S:.0f} s); audit: {report}")

    for a in answers:
        if a.status not in (200, 201):
            print(f"    +{a.at - load.started:6.2f} s {a.kind} {a.status} {a.code} {a.problem or ''}")
    bad = [a for a in answers if a.problem is not None]
    assert not bad, f"answers without a proper body or none at all: {bad[:5]}"
    wrong = [a for a in answers
             if a.status not in (200, 201) and (a.status, a.code, a.retryable) != (503, "service_unavailable", True)]
    assert not wrong, f"answers other than 200/201 or a retryable 503: {wrong[:5]}"
    assert slowest < CLIENT_TIMEOUT_S
    for name in ("restart", "refuse"):
        assert figures[f"{name}_503"], f"the {name} produced no 503: the fault was not exercised"
        recovery = figures[f"{name}_recovery_s"]
        assert isinstance(recovery, float) and recovery <= RECOVERY_BOUND_S, f"{name}: recovery {recovery}"
    assert api_alive and worker_alive
    for log in (f"api-{port}", "worker-0"):
        # Each process's LISTEN connection came back after each fault (wake-ups across processes).
        reconnected = (tmp_path / f"{log}.log").read_text().count("notification connection re-established")
        assert reconnected >= 2, f"{log}: the LISTEN connection reconnected {reconnected} time(s)"
    assert not missing and not not_done, f"acknowledged tasks missing {missing[:5]} or not ended {not_done[:5]}"
    assert ledger_ok, report


async def _settle(url: str, acked: list[str]) -> tuple[list[str], list[str], audit.LedgerAudit, bool]:
    store = open_store(url)
    try:
        for _ in range(40):  # up to 20 s for the tasks in flight to end
            if not await store.read(audit.live_count):
                break
            await asyncio.sleep(0.5)
        missing, not_done = await store.read(lambda r: audit.not_terminal(r, acked))
        report, balanced = await books_of(store)
    finally:
        await store.close()
    return missing, not_done, report, balanced


