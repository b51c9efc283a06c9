"""A private PostgreSQL server for tests that restart it or make it refuse connections.

The machine's shared PostgreSQL (127.0.0.1:5432) serves every other test running meanwhile, so a
fault test never touches it: it runs its own cluster (``initdb`` in a temporary folder, a free
port, ``fsync=off`` for speed), owned by the ``postgres`` OS user because ``initdb`` refuses root.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

#: Where Debian's packages put the server binaries: the newest version installed.
_PG_ROOT = Path("/usr/lib/postgresql")


def server_bin() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``, or None when no server is installed."""
    if not _PG_ROOT.is_dir():
        return None
    versions = sorted((p for p in _PG_ROOT.iterdir() if (p / "bin" / "initdb").exists()),
                      key=lambda p: int(p.name) if p.name.isdigit() else 0)
    return versions[-1] / "bin" if versions else None


def unavailable_reason() -> str | None:
    """Why a private server cannot run here, or None."""
    if server_bin() is None:
        return "no PostgreSQL server binaries under /usr/lib/postgresql"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root without a 'postgres' OS user to run initdb as"
    return None


class PrivateServer:
    """One PostgreSQL cluster in a temporary folder: start, stop, restart, refuse and accept."""

    def __init__(self, port: int) -> None:
        bin_dir = server_bin()
        assert bin_dir is not None, unavailable_reason()
        self.bin = bin_dir
        self.port = port
        self.root = Path(tempfile.mkdtemp(prefix="cracker-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=check)

    def init(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n"
                "shared_buffers = 32MB\n"
            )
        self._hba_accepting = (self.data / "pg_hba.conf").read_text()

    def start(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def restart(self) -> float:
        """``pg_ctl restart -m fast``: every session is cut (AdminShutdown), the port closes, the
        server comes back. Returns the seconds it took."""
        started = time.monotonic()
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-m", "fast", "-w", "-t",
                  "30", "restart")
        return time.monotonic() - started

    def psql(self, sql: str) -> str:
        psql = self.bin / "psql"
        return self._run(str(psql) if psql.exists() else "psql",
                         "-h", str(self.root), "-p", str(self.port), "-U", "postgres", "-d", "postgres", "-At",
                         "-c", sql).stdout

    def refuse(self) -> None:
        """Refuse every new connection and cut the sessions open now, with the server up: a
        ``reject`` line for every host and the local socket in pg_hba.conf, a configuration reload,
        then ``pg_terminate_backend`` of every client session. What clients meet is what a
        database that an operator fenced off (or a proxy that lost its backend) looks like."""
        (self.data / "pg_hba.conf").write_text(
            "local all postgres trust\n"  # this helper's own psql, over the private socket
            "host all all 0.0.0.0/0 reject\nhost all all ::/0 reject\n"
        )
        self.psql("SELECT pg_reload_conf()")
        time.sleep(0.2)  # the postmaster re-reads the file on SIGHUP, asynchronously
        self.psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                  "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()")

    def accept(self) -> None:
        (self.data / "pg_hba.conf").write_text(self._hba_accepting)
        self.psql("SELECT pg_reload_conf()")

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
