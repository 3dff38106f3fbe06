"""A PostgreSQL instance of the soak's own, so that restarting it disturbs nothing.

``initdb`` into a temporary directory, a free port on 127.0.0.1, the unix
socket in that directory, fsync off. When the soak runs as root, the server
runs as the ``postgres`` user (it refuses to run as root). The postmaster is
the driver's own child with a parent-death signal: if the driver is killed,
even with SIGKILL, the instance shuts down with it. ``close()`` stops it and
removes its directory, whatever happened.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg

BIN_DIRS = ("/usr/lib/postgresql/15/bin", "/usr/lib/postgresql/16/bin")
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    # Durable against a crash of the server (an immediate shutdown), which the
    # soak causes, but not of the machine, which it does not: commits are
    # written to the kernel before they return (synchronous_commit stays on),
    # never forced to disk.
    "fsync": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
    "logging_collector": "off",
}
#: pg_ctl's shutdown modes, as the signals that it sends the postmaster.
STOP_SIGNALS = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
}


def bin_dir() -> Path:
    """Where initdb and postgres are: $SOAK_PG_BIN, then Debian's places."""
    candidates = [os.environ.get("SOAK_PG_BIN", ""), *BIN_DIRS]
    for candidate in candidates:
        if candidate and (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "soak: PostgreSQL's initdb not found; set SOAK_PG_BIN to its directory"
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _die_with_parent() -> None:
    """In the postmaster, before exec: shut down at once if the driver dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGQUIT, 0, 0, 0)  # PR_SET_PDEATHSIG


class PrivatePostgres:
    def __init__(self, dbname: str = "soak") -> None:
        self.bin = bin_dir()
        self.dbname = dbname
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="django-jobs-soak-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.process: subprocess.Popen | None = None
        self.user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.dbname}"

    def _as_owner(self) -> dict:
        """subprocess arguments that run a command as the instance's owner."""
        if self.user is None:
            return {"cwd": self.root}
        return {
            "cwd": self.root,
            "user": self.user.pw_uid,
            "group": self.user.pw_gid,
            "extra_groups": [],
        }

    def create(self) -> None:
        """initdb, configure, start, and create the soak's database."""
        subprocess.run(
            [
                self.bin / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            **self._as_owner(),
        )
        conf = dict(SETTINGS, port=str(self.port))
        conf["unix_socket_directories"] = f"'{self.root}'"
        with open(self.data / "postgresql.conf", "a") as file:
            file.writelines(f"{key} = {value}\n" for key, value in conf.items())
        self.start()
        with self.connect("postgres") as admin:
            admin.execute(f'CREATE DATABASE "{self.dbname}"')

    def start(self, timeout: float = 30) -> None:
        log = open(self.log, "ab")  # noqa: SIM115  (the child keeps it)
        try:
            self.process = subprocess.Popen(
                [self.bin / "postgres", "-D", self.data],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **self._as_owner(),
            )
        finally:
            log.close()
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"soak: PostgreSQL exited; see {self.log}")
            try:
                with self.connect("postgres"):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str = "fast", timeout: float = 30) -> None:
        """Shut down as ``pg_ctl stop -m mode`` would (by signalling the postmaster)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(STOP_SIGNALS[mode])
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, mode: str = "fast") -> None:
        """Stop (fast or immediate) and start again on the same port and data."""
        self.stop(mode)
        self.start()

    def connect(self, dbname: str | None = None, **options) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user="postgres",
            dbname=dbname or self.dbname,
            autocommit=True,
            connect_timeout=2,
            application_name="soak-driver",
            **options,
        )

    def close(self) -> None:
        """Stop the server (immediately if it lingers) and remove its files."""
        with contextlib.suppress(Exception):
            self.stop("fast", timeout=10)
        with contextlib.suppress(Exception):
            self.stop("immediate", timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class Monitor:
    """The driver's own connection to the soak database, reopened as needed.

    The database is restarted under it on purpose: every query may fail, and
    the callers carry on without an answer (None) rather than stop the soak.
    """

    def __init__(self, instance: PrivatePostgres) -> None:
        self.instance = instance
        self.connection: psycopg.Connection | None = None

    def query(self, sql: str, params: list | tuple = ()) -> list[tuple] | None:
        try:
            if self.connection is None or self.connection.closed:
                self.connection = self.instance.connect()
            cursor = self.connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        except psycopg.Error:
            self.close()
            return None

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):
                self.connection.close()
            self.connection = None
