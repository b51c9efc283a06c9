"""Backups as docs/operations.md tells operators to take them, restored into a fresh database: a
server started on the restored copy serves the same balances, tasks and keys."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TURNSTILE_PASS, LiveServer, fresh_postgres_database, started_server

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is needed to test the documented backup")
        pytest.skip(f"{name} is not installed")
    return path


def _fill(server: LiveServer) -> tuple[str, dict[str, Any]]:
    """An account with solved, cancelled and top-up history; returns its key and what it serves."""
    account_id, key = server.new_account("2.00")
    headers = {"x-solvium-auth": key}
    ids = []
    for _ in range(3):
        created = httpx.post(f"{server.base_url}/v2/tasks/turnstile", json=TURNSTILE, headers=headers).json()
        ids.append(created["task_id"])
    for task_id in ids:
        httpx.get(f"{server.base_url}/v2/tasks/{task_id}?wait=20", headers=headers, timeout=30)
    assert server.cli("accounts", "topup", account_id, "1.50").returncode == 0
    return key, _served(server, key, ids)


def _served(server: LiveServer, key: str, ids: list[str]) -> dict[str, Any]:
    headers = {"x-solvium-auth": key}
    return {
        "balance": httpx.get(f"{server.base_url}/v2/balance", headers=headers).json(),
        "tasks": {i: httpx.get(f"{server.base_url}/v2/tasks/{i}", headers=headers).json() for i in ids},
    }


def _compare(before: dict[str, Any], restored: LiveServer, key: str) -> None:
    after = _served(restored, key, list(before["tasks"]))
    assert after == before
    assert all(task["status"] == "completed" for task in after["tasks"].values())
    assert before["balance"]["balance"] != "2.0000"  # the history is in it: charges and the top-up


def test_sqlite_online_backup_restores_the_same_service(tmp_path: Path) -> None:
    sqlite3 = _tool("sqlite3")
    (tmp_path / "live").mkdir()
    backup = tmp_path / "backup.db"
    with started_server(tmp_path / "live") as server:
        key, before = _fill(server)
        # While the server runs: SQLite's online backup copies a consistent snapshot of a WAL database.
        subprocess.run([sqlite3, str(tmp_path / "live" / "live.db"), f".backup '{backup}'"], check=True, timeout=60)
    (tmp_path / "restored").mkdir()
    shutil.copy(backup, tmp_path / "restored" / "live.db")
    with started_server(tmp_path / "restored") as restored:
        _compare(before, restored, key)


def test_postgres_dump_restores_the_same_service(tmp_path: Path) -> None:
    pg_dump, pg_restore = _tool("pg_dump"), _tool("pg_restore")
    dump = tmp_path / "cracker.dump"
    with fresh_postgres_database() as url:
        (tmp_path / "live").mkdir()
        with started_server(tmp_path / "live", CRACKER_DATABASE_URL=url) as server:
            key, before = _fill(server)
            subprocess.run([pg_dump, "--format=custom", f"--file={dump}", url], check=True, timeout=120)
    with fresh_postgres_database() as restored_url:
        subprocess.run([pg_restore, "--no-owner", f"--dbname={restored_url}", str(dump)], check=True, timeout=120)
        (tmp_path / "restored").mkdir()
        with started_server(tmp_path / "restored", CRACKER_DATABASE_URL=restored_url) as restored:
            _compare(before, restored, key)
            # The restored database is at the newest schema: migrate has nothing to do.
            migrated = restored.cli("migrate")
            assert migrated.returncode == 0, migrated.stderr
