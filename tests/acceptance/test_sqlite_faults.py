"""The SQLite file on a full disk, then read-only: a clear retryable 503, nothing half-written,
and recovery when the condition clears.

Mechanisms (the tests run as root, so ``chmod`` would not stop a write):
- disk full: the database lives on a tmpfs of a few MiB mounted for the test; the test truncates
  the WAL (``PRAGMA wal_checkpoint(TRUNCATE)``, so the next write must grow it) and fills the
  filesystem with a file until ENOSPC. SQLite then fails with SQLITE_FULL, as on a real full disk.
- read-only: ``chattr +i`` on the database, its WAL and shared-memory files and their folder, on
  the ordinary (ext4) disk. There an immutable file refuses writes even through descriptors opened
  before (EPERM), which is what a filesystem remounted read-only after an error does to a running
  server (``mount -o remount,ro`` itself refuses while the server holds the files open for
  writing, and tmpfs does not enforce the flag on open descriptors).

Protects: every create in the fault is answered 201 or ``503 service_unavailable`` with
``retryable: true`` (never a 500); reads keep answering; no failed create leaves a task or a hold
(the balance and the task count are those of the creates answered 201, and the ledger audit holds
afterwards); and creates succeed again, and pending tasks complete, once the condition clears.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from tests.acceptance.ledger_check import books_at
from tests.conftest import NOT_POSSIBLE_HERE, LiveServer, started_server

COMPLETES = {"url": "https://a.example", "site_key": "1x00000000000000000000AA"}
#: The filesystem the database lives on: room for the schema, a few hundred tasks and the WAL.
DISK_MIB = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of DISK_MIB mounted for the test (needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip(f"{NOT_POSSIBLE_HERE}: mounting a filesystem needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_MIB}m", "tmpfs", str(disk)],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.skip(f"{NOT_POSSIBLE_HERE}: mount -t tmpfs: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["chattr", "-R", "-i", str(disk)], capture_output=True, check=False)
        subprocess.run(["umount", "-l", str(disk)], capture_output=True, check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the filesystem is full; returns it."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        for size in (65536, 1024):  # then the last kilobytes that still fit
            with contextlib.suppress(OSError):
                while True:
                    out.write(b"\0" * size)
    return filler


def _truncate_wal(db: Path) -> None:
    """Checkpoint the WAL into the database and cut it to zero bytes: the next write must grow it."""
    conn = sqlite3.connect(db, timeout=5)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def _immutable(paths: list[Path], on: bool) -> None:
    subprocess.run(["chattr", "+i" if on else "-i", *map(str, paths)], check=True, capture_output=True)


class Client:
    def __init__(self, server: LiveServer, key: str) -> None:
        self.http = httpx.Client(base_url=server.base_url, timeout=10, headers={"x-solvium-auth": key})
        self.acked: list[str] = []
        self.refused: list[dict[str, object]] = []

    def create(self) -> int:
        response = self.http.post("/v2/tasks/turnstile", json=COMPLETES)
        body = response.json()  # never anything but JSON
        if response.status_code == 201:
            self.acked.append(body["task_id"])
        else:
            self.refused.append({"status": response.status_code, **body["error"]})
        return response.status_code

    def balance(self) -> tuple[str, str]:
        body = self.http.get("/v2/balance").json()
        return body["balance"], body["held"]

    def creates_until_refused(self, attempts: int) -> int:
        """Create until one is refused (some may still fit in the WAL's room); returns how many tried."""
        for n in range(1, attempts + 1):
            if self.create() != 201:
                return n
        return attempts

    def recover(self, within_s: float) -> float:
        """Seconds until a create is accepted again."""
        started = time.monotonic()
        while time.monotonic() - started < within_s:
            if self.create() == 201:
                return time.monotonic() - started
            time.sleep(0.1)
        raise AssertionError(f"no create accepted within {within_s} s: {self.refused[-3:]}")


def _check_refused(client: Client, what: str) -> None:
    assert client.refused, f"{what}: no create was refused: the fault was not exercised"
    for error in client.refused:
        assert (error["status"], error["code"], error["retryable"]) == (503, "service_unavailable", True), error


def _count_tasks(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        count: int = conn.execute("SELECT count(*) FROM tasks").fetchone()[0]
        return count
    finally:
        conn.close()


def _fault_round(server: LiveServer, db: Path, name: str, begin: Callable[[], None], end: Callable[[], None]) -> None:
    """One task created, the fault begun, creates until refused (and a few more), a read, the
    fault ended, recovery; then every acknowledged task completes, no refused create left a task or
    moved money, and the ledger audit holds."""
    _, key = server.new_account("100.00")
    client = Client(server, key)
    try:
        assert client.create() == 201
        first = client.acked[0]
        begin()
        try:
            tried = client.creates_until_refused(200)
            for _ in range(5):
                client.create()
            assert client.http.get(f"/v2/tasks/{first}").status_code == 200  # reads go on
        finally:
            end()
        _check_refused(client, name)
        print(f"\n{name}: {tried - 1} create(s) still fitted before the first refusal, then {len(client.refused)} "
              f"of {len(client.refused) + len(client.acked) - 1 - (tried - 1)} refused with 503: "
              f"{client.refused[0]['message']!r}")
        recovered = client.recover(10)
        print(f"{name} cleared: creates accepted again after {recovered:.2f} s")

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            states = {client.http.get(f"/v2/tasks/{t}").json()["status"] for t in client.acked}
            if states <= {"completed"}:
                break
            time.sleep(0.25)
        assert states == {"completed"}, states
        assert _count_tasks(db) == len(client.acked), "a refused create left a task behind"
        # The money moved for the acknowledged tasks only: each one's cost, nothing held.
        costs = sum(Decimal(client.http.get(f"/v2/tasks/{t}").json()["cost"]) for t in client.acked)
        available, held = client.balance()
        assert (Decimal(available), Decimal(held)) == (Decimal("100.00") - costs, 0), (available, held, costs)
    finally:
        client.http.close()


def test_sqlite_disk_full(small_disk: Path, tmp_path: Path) -> None:
    """The database's filesystem full: creates answer 201 or a retryable 503 (SQLITE_FULL), reads
    answer, nothing half-written, and creates succeed again once space is freed."""
    db = small_disk / "cracker.db"
    filler = small_disk / "filler"

    def fill() -> None:
        _truncate_wal(db)
        _fill(small_disk)

    with started_server(tmp_path, CRACKER_DATABASE_URL=f"sqlite:///{db}") as server:
        _fault_round(server, db, "disk full", fill, filler.unlink)
    _assert_audit(db)


def test_sqlite_read_only(tmp_path: Path) -> None:
    """The database's files and folder made immutable (read-only even for root and for the
    descriptors the server holds open): creates answer 201 or a retryable 503, reads answer,
    nothing half-written, and creates succeed again once the files are writable."""
    folder = tmp_path / "db"
    folder.mkdir()
    probe = folder / "probe"
    probe.touch()
    supported = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, text=True, check=False)
    subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
    probe.unlink()
    if supported.returncode != 0:
        pytest.skip(f"{NOT_POSSIBLE_HERE}: chattr +i: {supported.stderr.strip()}")
    db = folder / "cracker.db"
    files = [db, Path(f"{db}-wal"), Path(f"{db}-shm"), folder]

    with started_server(tmp_path, CRACKER_DATABASE_URL=f"sqlite:///{db}") as server:
        try:
            _fault_round(
                server, db, "read-only", lambda: _immutable([p for p in files if p.exists()], True),
                lambda: _immutable([p for p in files if p.exists()], False),
            )
        finally:
            _immutable([p for p in files if p.exists()], False)
    _assert_audit(db)


def _assert_audit(db: Path) -> None:
    report, ledger_ok = asyncio.run(books_at(f"sqlite:///{db}"))
    assert set(report.tasks_by_status) == {"completed"}, report
    assert ledger_ok, report


