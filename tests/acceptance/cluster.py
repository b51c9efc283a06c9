"""A throwaway PostgreSQL database and Cracker processes (API servers, workers) for the crash test
(tests/acceptance/crash_test.py) and the end-to-end benchmark (bench/e2e_bench.py, which puts this
folder on ``sys.path`` to import it)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url

#: The maintenance database; over the Unix socket when the server has one (cheaper round trips).
ADMIN_URL = os.environ.get(
    "CRACKER_BENCH_POSTGRES_URL",
    "postgresql://postgres@/test?host=/var/run/postgresql"
    if Path("/var/run/postgresql/.s.PGSQL.5432").exists()
    else "postgresql://postgres@127.0.0.1:5432/test",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _admin(sql: str) -> None:
    from cracker.store.notify import asyncpg_dsn

    conn = await asyncpg.connect(asyncpg_dsn(ADMIN_URL), timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database(prefix: str) -> tuple[str, str]:
    """(name, url) of a new empty database."""
    name = f"{prefix}_{secrets.token_hex(4)}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return name, make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_database(name: str) -> None:
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@dataclass
class Cluster:
    database_url: str
    workdir: Path
    env_extra: dict[str, str] = field(default_factory=dict)
    apis: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    workers: list[subprocess.Popen[bytes] | None] = field(default_factory=list)
    worker_args: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CRACKER_DATABASE_URL": self.database_url,
            "CRACKER_RATE_LIMIT_PER_S": "0",
            "CRACKER_CPU_WORKERS": "1",
            **self.env_extra,
        }

    def cli(self, *args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "cracker", *args], env=self.env, capture_output=True, text=True, timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"cracker {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def migrate(self) -> None:
        self.cli("migrate")

    def new_account(self, balance: str) -> tuple[str, str]:
        data = json.loads(self.cli("accounts", "create", "--name", "bench", "--balance", balance, "--json"))
        return data["account_id"], data["api_key"]

    def _spawn(self, args: list[str], env: dict[str, str], log_name: str) -> subprocess.Popen[bytes]:
        # The child writes to its own copy of the log's descriptor; ours is closed at once.
        with (self.workdir / f"{log_name}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "cracker", *args], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_api(self, port: int, *, in_process_workers: bool = False) -> None:
        env = {**self.env, "CRACKER_IN_PROCESS_WORKERS": "true" if in_process_workers else "false"}
        self.apis[port] = self._spawn(
            ["serve", "--port", str(port), "--log-level", "warning", "--no-access-log"], env, f"api-{port}"
        )

    def start_worker(self, index: int) -> None:
        while len(self.workers) <= index:
            self.workers.append(None)
        self.workers[index] = self._spawn(
            ["worker", "--name", f"bench-{index}", *self.worker_args], self.env, f"worker-{index}"
        )

    @staticmethod
    def _kill_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        # The whole process group, as when its machine or container dies: SIGKILL of the server
        # alone would leave its proof-of-work pool processes behind.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)

    def kill_api(self, port: int) -> None:
        self._kill_group(self.apis[port], signal.SIGKILL)
        self.apis[port].wait()

    def kill_worker(self, index: int) -> None:
        process = self.workers[index]
        assert process is not None
        self._kill_group(process, signal.SIGKILL)
        process.wait()

    def wait_healthy(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v2/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.apis[port].poll() is not None:
                break
            time.sleep(0.1)
        log = (self.workdir / f"api-{port}.log").read_text()
        raise RuntimeError(f"API on port {port} did not start:\n{log[-3000:]}")

    def start_scaled_out(self, apis: int = 2, workers: int = 2) -> list[int]:
        """API processes (no in-process workers) and worker processes, all up: the API ports."""
        ports = [free_port() for _ in range(apis)]
        for port in ports:
            self.start_api(port)
        for index in range(workers):
            self.start_worker(index)
        for port in ports:
            self.wait_healthy(port)
        return ports

    def stop(self) -> None:
        processes = [*self.apis.values(), *(w for w in self.workers if w is not None)]
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._kill_group(process, signal.SIGKILL)
                process.wait()
            self._kill_group(process, signal.SIGKILL)  # anything it left behind
