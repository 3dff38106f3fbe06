"""A PgBouncer of the test's own, in transaction pooling mode.

Debian's ``pgbouncer``, started on a free port in a temporary directory, in
front of the PostgreSQL server the tests use, and stopped (by process group)
at the end whatever happens. The machine's own services are not touched.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARY = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {folder}/users.txt
admin_users = {user}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 10
ignore_startup_parameters = extra_float_digits,options
logfile = {folder}/pgbouncer.log
pidfile = {folder}/pgbouncer.pid
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Bouncer:
    def __init__(self, host: str, port: int, user: str) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
        self.port = free_port()
        self.user = user
        (self.folder / "users.txt").write_text(f'"{user}" ""\n')
        config = self.folder / "pgbouncer.ini"
        config.write_text(
            CONFIG.format(
                host=host, port=port, listen=self.port, folder=self.folder, user=user
            )
        )
        command = [BINARY, str(config)]
        if os.geteuid() == 0:  # PgBouncer will not run as root
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
            for path in self.folder.iterdir():
                os.chown(path, owner.pw_uid, owner.pw_gid)
            command[1:1] = ["-u", "postgres"]
        self.process = subprocess.Popen(
            command, start_new_session=True, stderr=subprocess.PIPE
        )
        self._wait_until_up()

    def _wait_until_up(self, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"pgbouncer did not start: {self.log()}")

    def url(self, name: str) -> str:
        return f"postgres://{self.user}@127.0.0.1:{self.port}/{name}"

    def transactions(self, name: str) -> int:
        """How many transactions clients ran through it on database ``name``."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=self.user, dbname="pgbouncer",
            autocommit=True, prepare_threshold=None,
        ) as admin:  # fmt: skip
            cursor = admin.cursor()
            cursor.execute("SHOW STATS")
            names = [column.name for column in cursor.description]
            for row in cursor.fetchall():
                stats = dict(zip(names, row, strict=True))
                if stats["database"] == name:
                    return int(stats["total_xact_count"])
        return 0

    def log(self) -> str:
        path = self.folder / "pgbouncer.log"
        return path.read_text() if path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        shutil.rmtree(self.folder, ignore_errors=True)
