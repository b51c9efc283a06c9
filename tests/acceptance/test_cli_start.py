"""What an operator sees when `cracker` starts, stops or cannot start: one line, never a traceback."""

from __future__ import annotations

import concurrent.futures
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

import cracker
from tests.conftest import cracker_cli, free_port, postgres_admin_url, started_server


def _env(tmp_path: Path, database_url: str | None = None) -> dict[str, str]:
    return {**os.environ, "CRACKER_DATABASE_URL": database_url or f"sqlite:///{tmp_path / 'cli.db'}",
            "CRACKER_CPU_WORKERS": "1"}


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_version_prints_the_package_version(tmp_path: Path) -> None:
    result = cracker_cli("--version", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"cracker {cracker.__version__}"


@pytest.mark.parametrize("command", [["serve"], ["migrate"], ["accounts", "create", "--name", "x"]])
def test_an_unreachable_postgres_is_one_line_naming_the_setting(tmp_path: Path, command: list[str]) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://cracker:s3cret@127.0.0.1:{port}/cracker"
    if command == ["serve"]:
        command = [*command, "--port", str(free_port())]
    line = _one_line_error(cracker_cli(*command, env=_env(tmp_path, url)))
    assert f"cannot open the database postgresql://cracker:***@127.0.0.1:{port}/cracker" in line
    assert "s3cret" not in line
    assert "CRACKER_DATABASE_URL" in line


def test_a_missing_postgres_database_is_named(tmp_path: Path) -> None:
    url = make_url(postgres_admin_url()).set(database="cracker_no_such_database").render_as_string(hide_password=False)
    line = _one_line_error(cracker_cli("migrate", env=_env(tmp_path, url)))
    assert 'database "cracker_no_such_database" does not exist' in line


def test_a_sqlite_path_that_cannot_be_created_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    line = _one_line_error(cracker_cli("serve", "--port", str(free_port()),
                                       env=_env(tmp_path, f"sqlite:///{blocker}/cracker.db")))
    assert f"cannot open the database sqlite:///{blocker}/cracker.db" in line


def test_an_unsupported_database_url_is_one_line(tmp_path: Path) -> None:
    line = _one_line_error(cracker_cli("serve", "--port", str(free_port()),
                                       env=_env(tmp_path, "mysql://root@127.0.0.1/cracker")))
    assert "use sqlite:// or postgresql://" in line
    assert "CRACKER_DATABASE_URL" in line


def test_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = _one_line_error(cracker_cli("serve", "--port", str(port), env=_env(tmp_path)))
    assert f"port {port} on 127.0.0.1 is already in use" in line
    assert "--port" in line


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid``, from /proc (Linux)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        return " Z " not in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False


def _assert_gone(children: set[int], log: Path) -> None:
    # The forkserver and resource tracker notice their parent's exit on their own, a moment later
    # on a loaded machine; none may outlive it by more than that.
    deadline = time.monotonic() + 10
    while [pid for pid in children if _alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "the process left processes behind"
    assert "Traceback" not in log.read_text()


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_a_stop_signal(tmp_path: Path, stop_signal: signal.Signals) -> None:
    """A stop answers the long-poll in flight, exits 0 and leaves no solver process behind."""
    with started_server(tmp_path, CRACKER_CPU_WORKERS="1") as server:
        headers = {"x-solvium-auth": server.new_account("1.00")[1]}
        base = server.base_url
        # A proof-of-work task, so that the solver processes exist when the signal comes.
        task = httpx.post(f"{base}/v2/tasks/pow-sha256", json={"data": "stop", "difficulty": 2}, headers=headers).json()
        ended = httpx.get(f"{base}/v2/tasks/{task['task_id']}?wait=30", headers=headers, timeout=40).json()
        assert ended["status"] == "completed", ended
        children = _children(server.process.pid)
        assert children, "the server should have started its proof-of-work processes"
        # A long-poll in flight when the signal comes: about 2**24 hashes, a second or more of work.
        slow = httpx.post(f"{base}/v2/tasks/pow-sha256", json={"data": "slow", "difficulty": 6}, headers=headers).json()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            polling = pool.submit(httpx.get, f"{base}/v2/tasks/{slow['task_id']}?wait=60", headers=headers, timeout=90)
            time.sleep(0.3)
            server.process.send_signal(stop_signal)
            assert server.process.wait(timeout=90) == 0, (tmp_path / "server.log").read_text()
            answer = polling.result()
        assert answer.status_code == 200 and answer.json()["task_id"] == slow["task_id"], answer.text
    _assert_gone(children, tmp_path / "server.log")


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads the process tree from /proc")
def test_worker_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    env = _env(tmp_path)
    assert cracker_cli("migrate", env=env).returncode == 0
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([sys.executable, "-m", "cracker", "worker", "--concurrency", "2"],
                                   env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while "serving" not in log_path.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        children = _children(process.pid)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if process.poll() is None:
            process.kill()
    assert "stopping" in log_path.read_text()
    _assert_gone(children, log_path)
