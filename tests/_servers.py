"""Database servers a test starts itself: in temporary directories, on free ports.

The restart tests (tests/test_faults.py) stop and start these at will, and the Spider layout
(tests/_spider.py) starts three of them; the shared test servers are never touched. Each
server is stopped by its own process id (or its own ``pg_ctl``), and its directory removed.
Without the server binaries, a test that needs one skips, except under ``CI=true``, where it
fails.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence

from convostore import to_async_url

from ._databases import MYSQL_URL, skip_or_fail
from ._programs import free_port

__all__ = [
    "PrivateMariaDB",
    "PrivatePostgres",
    "PrivateServer",
    "free_port",
    "mariadb_server_binary",
    "wait_for_port",
]


def _missing(what: str) -> None:
    skip_or_fail(f"{what}; these tests start their own database servers")


def wait_for_port(
    port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Wait until something accepts connections on ``127.0.0.1:port`` (or ``process`` exits)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server for port {port} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.02)
    raise RuntimeError(f"no server on port {port} after {timeout}s")


def mariadb_server_binary() -> str | None:
    """The machine's MariaDB (or MySQL) server binary, if there is one."""
    return shutil.which("mariadbd", path="/usr/sbin:/usr/bin") or shutil.which(
        "mysqld", path="/usr/sbin:/usr/bin"
    )


class PrivateServer:
    """A database server of this test module's own, which it may stop and start at will."""

    url: str
    name: str

    def start(self) -> None:
        raise NotImplementedError

    def stop(self, *, crash: bool = False) -> None:
        raise NotImplementedError

    def destroy(self) -> None:
        raise NotImplementedError

    def restart(self, down_for: float, *, crash: bool = False) -> float:
        """Stop the server, keep it down ``down_for`` seconds, start it; return the outage."""
        began = time.monotonic()
        self.stop(crash=crash)
        time.sleep(down_for)
        self.start()
        return time.monotonic() - began


class PrivatePostgres(PrivateServer):
    """A PostgreSQL cluster made with initdb, run with pg_ctl (as ``postgres`` when root)."""

    name = "postgresql"

    def __init__(self) -> None:
        bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        bindir = os.environ.get("CONVOSTORE_PG_BINDIR") or (bindirs[-1] if bindirs else "")
        if not os.path.exists(os.path.join(bindir, "pg_ctl")):
            _missing("PostgreSQL server binaries (initdb, pg_ctl) not found")
        self.bindir = bindir
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.dir = tempfile.mkdtemp(prefix="convostore-pg-")
        if self.as_user:
            shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._run("initdb", "-D", f"{self.dir}/data", "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    def _run(self, tool: str, *args: str) -> None:
        subprocess.run(
            [*self.as_user, os.path.join(self.bindir, tool), *args],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def _ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", f"{self.dir}/data", "-l", f"{self.dir}/log", "-o", options, *args)

    def start(self) -> None:
        self._ctl("-w", "start")

    def stop(self, *, crash: bool = False) -> None:
        # "fast" rolls back open transactions and closes every session; "immediate" is a
        # crash: no checkpoint, crash recovery at the next start.
        self._ctl("-w", "-m", "immediate" if crash else "fast", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-w", "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)


class PrivateMariaDB(PrivateServer):
    """A MariaDB server on a data directory made with mariadb-install-db."""

    name = "mysql"

    def __init__(self, options: Sequence[str] = (), *, prefix: str = "convostore-mariadb-") -> None:
        """Make a data directory and start the server on it.

        Args:
            options: More server options (``--plugin-dir=...``), at every start.
            prefix: The temporary directory's name starts with it.
        """
        install = shutil.which("mariadb-install-db") or shutil.which("mysql_install_db")
        server = mariadb_server_binary()
        if not install or not server:
            _missing("MariaDB server binaries (mariadb-install-db, mariadbd) not found")
        self.server = str(server)
        self.options = list(options)
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        # The driver of the run's MySQL URL: CONVOSTORE_TEST_MYSQL_URL=mysql+asyncmy://... runs
        # the restarts on asyncmy.
        driver = to_async_url(MYSQL_URL).drivername
        self.url = f"{driver}://root@127.0.0.1:{self.port}/test"
        self.user = ["--user=root"] if os.geteuid() == 0 else []
        subprocess.run(
            [
                str(install),
                "--no-defaults",
                f"--datadir={self.dir}/data",
                *self.user,
                "--auth-root-authentication-method=normal",
                "--skip-name-resolve",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.process: subprocess.Popen[bytes] | None = None
        self.start()
        os.makedirs(f"{self.dir}/data/test", exist_ok=True)  # the `test` database

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                self.server,
                "--no-defaults",
                f"--datadir={self.dir}/data",
                f"--port={self.port}",
                "--bind-address=127.0.0.1",
                f"--socket={self.dir}/mysqld.sock",
                f"--pid-file={self.dir}/mysqld.pid",
                "--innodb-buffer-pool-size=32M",
                "--skip-name-resolve",
                f"--log-error={self.dir}/error.log",
                *self.user,
                *self.options,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, process=self.process)

    def stop(self, *, crash: bool = False) -> None:
        if self.process is None:
            return
        # SIGTERM is a clean shutdown (open transactions rolled back); SIGKILL a crash, with
        # InnoDB crash recovery at the next start.
        self.process.send_signal(signal.SIGKILL if crash else signal.SIGTERM)
        self.process.wait(timeout=60)
        self.process = None

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.stop(crash=True)
        shutil.rmtree(self.dir, ignore_errors=True)
