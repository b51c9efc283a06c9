"""Shared fixtures: the real app in-process (real SQLite, real solvers) and the real server as a subprocess."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from cracker.api.app import create_app
from cracker.api.middleware import RequestContextMiddleware
from cracker.config import Settings
from cracker.domain.clock import Clock, now
from cracker.domain.workers import WorkerKind
from cracker.runtime import Runtime
from tests.timing import within

TURNSTILE_PASS = "1x00000000000000000000AA"
TURNSTILE_FAIL = "2x00000000000000000000AB"
HCAPTCHA_KEY = "10000000-ffff-ffff-ffff-000000000001"
RECAPTCHA_V2_KEY = "6LeIxAcTAAAAAJcZVRqyHh71UMIEGNQ_MXjiZKhI"


# --- tiers: tests/unit (no database, no server), tests/integration (real databases, the app in
# process), tests/acceptance (the real server as a subprocess over HTTP); one command runs all ---

_HEAVIER_FIXTURES = {
    "unit": {"api", "api_factory", "backend", "live_server", "store_url", "postgres_url", "sqlite_url"},
    "integration": {"live_server"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test in a tier uses no fixture of a heavier one (so `pytest tests/unit` stays fast and needs
    no database); a test that does belongs one folder up. A test marked ``sqlite_only`` (it drives
    SQLite's own locking) runs on that store alone: its PostgreSQL variant is deselected."""
    other_store = [item for item in items if item.get_closest_marker("sqlite_only") is not None
                   and getattr(item, "callspec", None) is not None and item.callspec.params.get("backend") != "sqlite"]
    if other_store:
        config.hook.pytest_deselected(items=other_store)
        items[:] = [item for item in items if item not in other_store]
    for item in items:
        parts = Path(str(item.path)).parts
        tier = next((t for t in _HEAVIER_FIXTURES if t in parts), None)
        used = _HEAVIER_FIXTURES.get(tier, set()) & set(getattr(item, "fixturenames", ())) if tier else set()
        if used:
            raise pytest.UsageError(f"{item.nodeid} is in tests/{tier} but uses {sorted(used)}: move it up a tier")


# --- no silent skips in CI ---

#: The start of a skip reason for a check this machine cannot do whatever is installed (a
#: container without the privilege to mount a filesystem, a filesystem without ``chattr +i``).
NOT_POSSIBLE_HERE = "not possible on this machine"
#: Skips that depend on the CPU or the machine, not on what the test setup installed: allowed in CI too.
_HARDWARE_SKIPS = ("not available on this CPU", NOT_POSSIBLE_HERE)
_skipped: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not any(reason in str(report.longrepr) for reason in _HARDWARE_SKIPS):
        _skipped.append(f"{report.nodeid}: {report.longrepr}")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI a skipped test is a check that did not run (a compiler, npm, a resolver missing):
    fail the run and name them, instead of passing green without them."""
    if os.environ.get("CI") and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("=", "skipped in CI (each is a check that did not run)", red=True)
            for line in _skipped:
                reporter.write_line(line)


def make_settings(tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp / 'cracker.db'}",
        "rate_limit_per_s": 0,
        "address_rate_limit_per_s": 0,
        "cpu_workers": 1,
        "docs_base_url": "",
    }
    values.update(overrides)
    return Settings(**values)


@dataclass
class Api:
    """The in-process app and a way to make clients for fresh accounts on it."""

    app: RequestContextMiddleware
    runtime: Runtime

    def client(self, api_key: str | None = None) -> httpx.AsyncClient:
        headers = {"x-solvium-auth": api_key} if api_key else {}
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://testserver", headers=headers
        )

    async def account(self, balance: str = "10.00") -> tuple[str, str]:
        """A new account with that balance: (account_id, client api key)."""
        from cracker.domain.money import parse_usd

        issued = await self.runtime.accounts.create_account("test", parse_usd(balance))
        return issued.account_id, issued.api_key

    async def client_for(self, balance: str = "10.00") -> httpx.AsyncClient:
        _, key = await self.account(balance)
        return self.client(key)


@asynccontextmanager
async def running_api(settings: Settings, clock: Clock = now) -> AsyncIterator[Api]:
    app = create_app(settings, clock=clock)
    async with app.fastapi.router.lifespan_context(app.fastapi):
        runtime: Runtime = app.fastapi.cracker.runtime
        if not settings.in_process_workers:
            # Tests without in-process workers play the worker themselves (they claim by hand):
            # an idle built-in worker in the registry makes creation count the built-in types
            # as served, as a `cracker worker` process elsewhere would.
            await runtime.worker_service.register(
                kind=WorkerKind.BUILTIN, name="tests", types=sorted(runtime.solvers.types), concurrency=1,
                worker_id="tests",
            )
        yield Api(app=app, runtime=runtime)


def postgres_admin_url() -> str:
    """The maintenance connection the tests create their PostgreSQL databases from."""
    return os.environ.get("CRACKER_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


async def _admin_sql(sql: str) -> None:
    import asyncpg

    from cracker.store.notify import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(postgres_admin_url()), timeout=10)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_database() -> tuple[str, str]:
    """A new, empty PostgreSQL database: (name, URL). Unreachable: a skip, except in CI (``CI``
    set), where it fails: CI proves both stores."""
    import secrets

    import asyncpg
    from sqlalchemy.engine import make_url

    name = f"cracker_test_{secrets.token_hex(4)}"
    try:
        await _admin_sql(f'CREATE DATABASE "{name}"')
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL at {postgres_admin_url()} is unreachable ({exc}); set CRACKER_TEST_POSTGRES_URL"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return name, make_url(postgres_admin_url()).set(database=name).render_as_string(hide_password=False)


async def _drop_database(name: str) -> None:
    await _admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@asynccontextmanager
async def fresh_postgres_url() -> AsyncIterator[str]:
    """A new, empty PostgreSQL database on the test server, dropped afterwards."""
    name, url = await _create_database()
    try:
        yield url
    finally:
        await _drop_database(name)


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """``fresh_postgres_url`` for synchronous tests and fixtures (no event loop running)."""
    import asyncio

    name, url = asyncio.run(_create_database())
    try:
        yield url
    finally:
        asyncio.run(_drop_database(name))


@asynccontextmanager
async def app_on(backend: str, tmp: Path, clock: Clock = now, **overrides: Any) -> AsyncIterator[Api]:
    """The real app on a fresh database of ``backend`` (a file under ``tmp``, or PostgreSQL);
    ``clock``: what its services read the time from (``tests.clock.ManualClock`` for lease tests)."""
    if backend == "sqlite":
        async with running_api(make_settings(tmp, **overrides), clock) as api:
            yield api
        return
    async with fresh_postgres_url() as url:
        async with running_api(make_settings(tmp, database_url=url, **overrides), clock) as api:
            yield api


#: The app-level suite runs on both stores: the SQL production runs on PostgreSQL is not SQLite's.
@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
async def api(tmp_path_factory: pytest.TempPathFactory, backend: str) -> AsyncIterator[Api]:
    """One app for the whole session (per store); tests isolate themselves with fresh accounts."""
    async with app_on(backend, tmp_path_factory.mktemp("api")) as api:
        yield api


@pytest.fixture
def api_factory(tmp_path: Path, backend: str) -> Callable[..., Any]:
    """An app with its own database and settings, for tests that need a special configuration."""

    def factory(**overrides: Any) -> Any:
        return app_on(backend, tmp_path, **overrides)

    return factory


async def wait_terminal(client: httpx.AsyncClient, task_id: str, timeout: float = 20.0) -> dict[str, Any]:
    import asyncio

    deadline = time.monotonic() + within(timeout)
    while True:
        body: dict[str, Any] = (await client.get(f"/v2/tasks/{task_id}")).json()
        if body["status"] in ("completed", "rejected") or time.monotonic() > deadline:
            return body
        await asyncio.sleep(0.02)


# --- the real server, as a subprocess over real HTTP ---


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cracker_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cracker", *args], env=env, capture_output=True, text=True, timeout=60,
        check=False,
    )


@dataclass
class LiveServer:
    base_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_path: Path

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return cracker_cli(*args, env=self.env)

    def new_account(self, balance: str = "10.00") -> tuple[str, str]:
        result = self.cli("accounts", "create", "--name", "live", "--balance", balance, "--json")
        assert result.returncode == 0, result.stderr
        data = json.loads(result.stdout)
        return data["account_id"], data["api_key"]


@contextmanager
def started_server(
    tmp: Path, log_level: str = "warning", *, tls: tuple[Path, Path] | None = None, **env_overrides: str
) -> Iterator[LiveServer]:
    """``cracker serve`` as a subprocess on a free port, its own SQLite database under ``tmp``
    unless the overrides name another, stopped (SIGTERM) on exit; its output in ``log_path``.
    ``tls``: (certificate, key) files to serve HTTPS with (the certificate must name 127.0.0.1)."""
    port = free_port()
    env = {
        **os.environ,
        "CRACKER_DATABASE_URL": f"sqlite:///{tmp / 'live.db'}",
        "CRACKER_RATE_LIMIT_PER_S": "1000",
        "CRACKER_RATE_LIMIT_BURST": "1000",
        "CRACKER_ADDRESS_RATE_LIMIT_PER_S": "0",
        "CRACKER_CPU_WORKERS": "1",
        **env_overrides,
    }
    log_path = tmp / "server.log"
    with log_path.open("wb") as log:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "cracker", "serve", "--port", str(port), "--log-level", log_level,
             *(("--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])) if tls else ())],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    base_url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(tls[0])) if tls else True
    deadline = time.monotonic() + within(60)
    while True:
        try:
            if httpx.get(f"{base_url}/v2/health", timeout=1, verify=verify).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("server did not start:\n" + log_path.read_text())
        time.sleep(0.1)
    try:
        yield LiveServer(base_url=base_url, env=env, process=process, log_path=log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with started_server(tmp_path_factory.mktemp("live")) as server:
        yield server
