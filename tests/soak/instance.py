"""A database instance of the soak's own, so that restarting it disturbs nothing.

PostgreSQL by default; ``PrivateMariaDB`` (below) is the MariaDB variant,
with the same interface, so that the driver, the chaos and the report do not
care which one runs.

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


class PrivateServer:
    """What the private servers share: a process of the driver's, in a
    session of its own and with a parent-death signal, waited for until it
    answers, stopped by the signal of a mode (``stop_signals``), removed
    with its files at the end."""

    name = ""
    #: Each shutdown mode's signal; the chaos draws from ``stop_modes``.
    stop_signals: dict[str, int] = {}
    #: How ``close`` stops it: gently first, then for sure.
    closing = (("", 0.0), ("", 0.0))
    #: What a connection that the server refuses raises.
    unavailable: type[Exception] = Exception
    process: subprocess.Popen | None
    log: Path
    root: Path

    @property
    def stop_modes(self) -> tuple[str, ...]:
        return tuple(self.stop_signals)

    def _spawn(self, argv: list[str], timeout: float, **popen) -> None:
        log = open(self.log, "ab")  # noqa: SIM115  (the child keeps it)
        try:
            self.process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
                **popen,
            )
        finally:
            log.close()
        self.wait_ready(timeout)

    def _ready(self) -> None:
        """Connect once (and close): raises ``unavailable`` until it answers."""
        raise NotImplementedError

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"soak: {self.name} exited; see {self.log}")
            try:
                self._ready()
                return
            except self.unavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self, mode: str, timeout: float = 30) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(self.stop_signals[mode])
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self, mode: str) -> None:
        """Stop in ``mode`` and start again on the same port and data."""
        self.stop(mode)
        self.start()

    def start(self, timeout: float = 30) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop the server (for sure if it lingers) and remove its files."""
        for mode, timeout in self.closing:
            with contextlib.suppress(Exception):
                self.stop(mode, timeout=timeout)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class PrivatePostgres(PrivateServer):
    name = "PostgreSQL"
    vendor = "postgresql"
    #: What a failed query raises (the Monitor carries on through it).
    errors: tuple[type[Exception], ...] = (psycopg.Error,)
    #: pg_ctl's -m modes that the chaos draws from, then the gentlest.
    stop_signals = {
        "fast": STOP_SIGNALS["fast"],
        "immediate": STOP_SIGNALS["immediate"],
    }
    closing = (("fast", 10.0), ("immediate", 10.0))
    unavailable = psycopg.OperationalError

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
        argv = [str(self.bin / "postgres"), "-D", str(self.data)]
        self._spawn(argv, timeout, **self._as_owner())

    def _ready(self) -> None:
        with self.connect("postgres"):
            pass

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

    def terminate_connections(
        self, monitor: Monitor, pids: list[int]
    ) -> list[tuple[bool, str]] | None:
        """End the connections of these processes (each names its own
        ``soak-<pid>``); (ended, name) for each, None if the query failed."""
        return monitor.query(
            "SELECT pg_terminate_backend(pid), application_name FROM pg_stat_activity "
            "WHERE application_name = ANY(%s)",
            [[f"soak-{pid}" for pid in pids]],
        )


class Monitor:
    """The driver's own connection to the soak database, reopened as needed.

    The database is restarted under it on purpose: every query may fail, and
    the callers carry on without an answer (None) rather than stop the soak.
    """

    def __init__(self, instance: PrivatePostgres | PrivateMariaDB) -> None:
        self.instance = instance
        self.connection = None

    def query(self, sql: str, params: list | tuple = ()) -> list[tuple] | None:
        try:
            if self.connection is None or self.connection.closed:
                self.connection = self.instance.connect()
            cursor = self.connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else []
        except self.instance.errors:
            self.close()
            return None

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(*self.instance.errors):
                self.connection.close()
            self.connection = None


#: mariadbd's options beyond the datadir, port and socket. Durable against a
#: crash of the server (SIGKILL, which the soak causes) but not of the machine,
#: as the PostgreSQL instance's fsync=off: the redo log is written to the
#: kernel at each commit (innodb_flush_log_at_trx_commit=2), forced to disk
#: once a second.
MARIADB_OPTIONS = (
    "--bind-address=127.0.0.1",
    "--skip-name-resolve",
    "--skip-log-bin",
    "--max-connections=300",
    "--innodb-buffer-pool-size=64M",
    "--innodb-flush-log-at-trx-commit=2",
    "--innodb-doublewrite=0",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_unicode_ci",
)
#: The mariadbd shutdown modes the chaos draws from, as signals: a clean
#: shutdown (what ``mariadb-admin shutdown`` asks for), or a crash that
#: InnoDB recovers from at the next start.
MARIADB_STOP_SIGNALS = {"shutdown": signal.SIGTERM, "kill": signal.SIGKILL}


class MySQLConnection:
    """A MySQLdb connection with psycopg's ``execute(sql, params)`` and
    ``closed``, which is all the soak's readers use."""

    def __init__(self, raw) -> None:
        self.raw = raw
        self.closed = False

    def execute(self, sql: str, params: list | tuple = ()):
        cursor = self.raw.cursor()
        # Without parameters MySQLdb does no %-interpolation, as psycopg.
        cursor.execute(sql, tuple(params) if params else None)
        return cursor

    def close(self) -> None:
        self.closed = True
        self.raw.close()

    def __enter__(self) -> MySQLConnection:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class PrivateMariaDB(PrivateServer):
    """A MariaDB instance: ``mariadb-install-db`` into a temporary directory,
    ``mariadbd`` on a free port of 127.0.0.1 and a socket in that directory,
    root without a password. As the PostgreSQL instance, the server is the
    driver's child with a parent-death signal (it keeps the driver's user:
    as root it runs with ``--user=root``, since a change of user would drop
    the parent-death signal)."""

    name = "MariaDB"
    vendor = "mysql"
    stop_signals = MARIADB_STOP_SIGNALS
    closing = (("shutdown", 20.0), ("kill", 10.0))

    def __init__(self, dbname: str = "soak") -> None:
        import MySQLdb

        self.driver = MySQLdb
        self.errors: tuple[type[Exception], ...] = (MySQLdb.Error,)
        self.unavailable = MySQLdb.OperationalError
        for name in ("mariadb-install-db", "mariadbd"):
            if shutil.which(name) is None and not Path("/usr/sbin", name).exists():
                raise RuntimeError(f"soak: {name} not found (Debian: mariadb-server)")
        self.dbname = dbname
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="django-jobs-soak-mariadb-"))
        self.data = self.root / "data"
        self.socket = self.root / "mariadb.sock"
        self.log = self.root / "mariadb.log"
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/{self.dbname}"

    def _binary(self, name: str) -> str:
        return shutil.which(name) or str(Path("/usr/sbin", name))

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    def create(self) -> None:
        """Install the system tables, start, and create the soak's database."""
        subprocess.run(
            [
                self._binary("mariadb-install-db"),
                "--no-defaults",
                f"--datadir={self.data}",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
                *self._as_root(),
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            timeout=120,
        )
        self.start()
        with self.connect(None) as admin:
            admin.execute(
                f"CREATE DATABASE `{self.dbname}` CHARACTER SET utf8mb4 "
                "COLLATE utf8mb4_unicode_ci"
            )

    def start(self, timeout: float = 30) -> None:
        argv = [
            self._binary("mariadbd"),
            "--no-defaults",
            f"--datadir={self.data}",
            f"--port={self.port}",
            f"--socket={self.socket}",
            f"--pid-file={self.root / 'mariadb.pid'}",
            *MARIADB_OPTIONS,
            *self._as_root(),
        ]
        self._spawn(argv, timeout, cwd=self.root)

    def _ready(self) -> None:
        with self.connect(None):
            pass

    def stop(self, mode: str = "shutdown", timeout: float = 60) -> None:
        """Shut down cleanly (SIGTERM, as ``mariadb-admin shutdown``) or crash
        it (SIGKILL: InnoDB recovers at the next start)."""
        super().stop(mode, timeout)

    def connect(self, dbname: str | None = "", **options) -> MySQLConnection:
        """``dbname`` None: no database (the server's own); "": the soak's."""
        kwargs = {"database": dbname or self.dbname} if dbname is not None else {}
        raw = self.driver.connect(
            host="127.0.0.1",
            port=self.port,
            user="root",
            connect_timeout=2,
            charset="utf8mb4",
            autocommit=True,
            # UNIX_TIMESTAMP reads Django's DATETIME columns (UTC) as UTC.
            init_command="SET time_zone = '+00:00'",
            **kwargs,
            **options,
        )
        return MySQLConnection(raw)

    def terminate_connections(
        self, monitor: Monitor, pids: list[int]
    ) -> list[tuple[bool, str]] | None:
        """KILL CONNECTION for each connection of these processes.

        MariaDB has no application name on a connection: a connection is
        found by its client's port (PROCESSLIST's host is "127.0.0.1:port"),
        and a process's ports by its sockets' inodes in /proc/net/tcp.
        """
        owners = {port: pid for pid in pids for port in tcp_ports(pid)}
        rows = monitor.query("SELECT id, host FROM information_schema.processlist")
        if rows is None:
            return None
        result = []
        for thread, host in rows:
            port = host.rpartition(":")[2] if host else ""
            if port.isdigit() and int(port) in owners:
                ok = monitor.query(f"KILL CONNECTION {int(thread)}") is not None
                result.append((ok, f"soak-{owners[int(port)]}"))
        return result


def tcp_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's sockets (IPv4 and IPv6)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as file:
            for line in list(file)[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[9] in inodes:
                    ports.add(int(fields[1].rpartition(":")[2], 16))
    return ports


#: The soak's databases, by the name ``--database`` takes.
INSTANCES = {"postgresql": PrivatePostgres, "mariadb": PrivateMariaDB}
