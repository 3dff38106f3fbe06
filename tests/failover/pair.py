"""A private PostgreSQL primary and its streaming standby, for failover tests.

The primary is the soak's ``PrivatePostgres`` (initdb in a temp dir, a free
port, stopped with its driver). The standby is built from it with
``pg_basebackup -R`` (which writes ``standby.signal`` and the connection to
the primary) into a temp dir of its own, on its own port, and started by the
test. It streams through a TCP proxy, the replication link, which the test
can hold: the standby then falls behind, as it does when the network between
the two servers stalls. ``Pair.fail_over()`` does what an HA manager does
when the primary's machine dies: drop the link and what it still held, stop
the primary at once (as a crash would: no checkpoint, its connections cut),
then promote the standby.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from pathlib import Path

import psycopg

from tests.acceptance.dbproxy import DatabaseProxy
from tests.soak.instance import PrivatePostgres

#: The standby's name: its ``cluster_name`` and the ``application_name`` of
#: its WAL receiver, which ``synchronous_standby_names`` refers to.
STANDBY_NAME = "standby"


class ReplicationLink(DatabaseProxy):
    """The proxy between the standby and the primary.

    Besides holding everything (``hang()``), it can hold only what the standby
    sends back (``hold_acks()``): the WAL still reaches the standby, but the
    primary never hears that it arrived. A synchronous commit then waits,
    and is on the standby when the primary dies: committed, though its
    client got an error (a commit "in doubt", which a real failover leaves
    when the primary dies between the standby's flush and its reply).
    """

    def hold_acks(self) -> None:
        with self.lock:
            self.mode = "acks"

    def _held(self, source: socket.socket) -> bool:
        if self.mode == "hung":
            return True
        # The standby is the proxy's client: the first socket of each pair.
        return self.mode == "acks" and any(source is pair[0] for pair in self.pairs)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """DatabaseProxy's relay, holding what ``_held`` says."""
        while True:
            try:
                data = source.recv(65536)
            except OSError:
                break
            if not data:
                break
            while self._held(source) and not self.stopped.is_set():
                time.sleep(0.05)
            try:
                sink.sendall(data)
            except OSError:
                break
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def down(self) -> None:
        """Cut the link, dropping what it held, and refuse new connections.

        The connections are cut before the mode changes, so that a relay
        holding data never gets to pass it on.
        """
        with self.lock:
            self._cut()
            self.mode = "down"


class Standby(PrivatePostgres):
    """A hot standby streaming from the primary through ``link``."""

    def __init__(self, primary: PrivatePostgres, link: ReplicationLink) -> None:
        super().__init__(primary.dbname)
        self.primary = primary
        self.link = link

    def create(self) -> None:
        """Copy the primary with pg_basebackup -R, then start as a standby."""
        source = (
            f"host=127.0.0.1 port={self.link.port} user=postgres "
            f"application_name={STANDBY_NAME}"
        )
        subprocess.run(
            [
                self.bin / "pg_basebackup",
                "--pgdata",
                self.data,
                "--dbname",
                source,
                "--write-recovery-conf",
                "--wal-method=stream",
                "--checkpoint=fast",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            **self._as_owner(),
        )
        # The copied postgresql.conf names the primary's port and socket
        # directory: the last setting of a name wins.
        conf = {
            "port": str(self.port),
            "unix_socket_directories": f"'{self.root}'",
            "cluster_name": f"'{STANDBY_NAME}'",
            "hot_standby": "on",
        }
        with open(self.data / "postgresql.conf", "a") as file:
            file.writelines(f"{key} = {value}\n" for key, value in conf.items())
        self.start()

    def promote(self, timeout: int = 60) -> None:
        """End recovery: from now on it is a primary that accepts writes."""
        with self.connect("postgres") as connection:
            promoted = connection.execute(
                "SELECT pg_promote(true, %s)", [timeout]
            ).fetchone()[0]
        if not promoted:
            raise RuntimeError(f"failover: the standby was not promoted in {timeout}s")


class Pair:
    """A primary and a standby, both stopped and removed by ``close()``."""

    def __init__(self, dbname: str = "failover") -> None:
        self.primary = PrivatePostgres(dbname)
        self.link: ReplicationLink | None = None
        self.standby: Standby | None = None

    @property
    def ports(self) -> tuple[int, int]:
        return self.primary.port, self.standby.port

    def url(self, **options: str) -> str:
        """The multi-host URL (django-environ reads it into HOST, PORT, OPTIONS)."""
        hosts = ",".join(f"127.0.0.1:{port}" for port in self.ports)
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"postgres://postgres@{hosts}/{self.primary.dbname}?{query}"

    def create(self, synchronous: bool, timeout: float = 60) -> None:
        """Start both; with ``synchronous``, a commit on the primary returns
        only once the standby has it (``synchronous_commit = on``)."""
        self.primary.create()
        self.link = ReplicationLink(("127.0.0.1", self.primary.port))
        self.standby = Standby(self.primary, self.link)
        self.standby.create()
        names = f'"{STANDBY_NAME}"' if synchronous else ""
        with self.primary.connect("postgres") as admin:
            admin.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{names}'")
            admin.execute("ALTER SYSTEM SET synchronous_commit = 'on'")
            admin.execute("SELECT pg_reload_conf()")
        self.wait_streaming("sync" if synchronous else "async", timeout)

    def wait_streaming(self, mode: str, timeout: float) -> None:
        """Wait until the standby streams from the primary in ``mode``."""
        deadline = time.monotonic() + timeout
        query = (
            "SELECT sync_state FROM pg_stat_replication "
            "WHERE application_name = %s AND state = 'streaming'"
        )
        while time.monotonic() < deadline:
            with self.primary.connect("postgres") as admin:
                row = admin.execute(query, [STANDBY_NAME]).fetchone()
            if row and row[0] == mode:
                return
            time.sleep(0.1)
        raise RuntimeError(f"failover: the standby is not streaming ({mode}) yet")

    def fail_over(
        self, hold: float = 0.0, gap: float = 0.0, acks_only: bool = False
    ) -> dict[str, float]:
        """Hold the replication link ``hold`` seconds (only the standby's
        replies if ``acks_only``), drop the link, stop the primary at once,
        wait ``gap`` seconds (an HA manager's detection time), promote the
        standby.

        Returns the wall-clock times of the hold, the stop and the end of the
        promotion, and how many bytes of WAL the standby lacked when it was
        promoted (what the primary had written and never sent). Whatever was
        acknowledged before ``held_at`` is on the standby: the hold waits for
        the standby to receive all the WAL flushed by then, even when
        replication is asynchronous.
        """
        held_at = time.time()
        self.wait_received(self._lsn(self.primary, "pg_current_wal_flush_lsn()"))
        if hold:
            self.link.hold_acks() if acks_only else self.link.hang()
            time.sleep(hold)
        written = self._lsn(self.primary, "pg_current_wal_lsn()")
        stopped_at = time.time()
        # The link first: a standby that reconnected through it while the
        # primary shuts down would leave a backend waiting for its held
        # startup packet, which the postmaster waits for (not a crash's way).
        self.link.down()
        self.primary.stop("immediate")
        time.sleep(gap)
        received = self._lsn(self.standby, "pg_last_wal_receive_lsn()")
        self.standby.promote()
        with self.standby.connect("postgres") as connection:
            behind = connection.execute(
                "SELECT pg_wal_lsn_diff(%s, %s)::bigint", [written, received]
            ).fetchone()[0]
        return {
            "held_at": held_at,
            "stopped_at": stopped_at,
            "promoted_at": time.time(),
            "wal_bytes_behind": behind,
        }

    def wait_received(self, lsn: str, timeout: float = 30) -> None:
        """Wait until the standby has received the WAL up to ``lsn``."""
        deadline = time.monotonic() + timeout
        query = "SELECT pg_last_wal_receive_lsn() >= %s::pg_lsn"
        while time.monotonic() < deadline:
            with self.standby.connect("postgres") as connection:
                if connection.execute(query, [lsn]).fetchone()[0]:
                    return
            time.sleep(0.01)
        raise RuntimeError(f"failover: the standby did not receive {lsn} in time")

    @staticmethod
    def _lsn(instance: PrivatePostgres, function: str) -> str:
        with instance.connect("postgres") as connection:
            return connection.execute(f"SELECT {function}::text").fetchone()[0]

    def keep_logs(self, directory: Path) -> None:
        """Copy both servers' logs into ``directory`` (before ``close()``)."""
        for name, instance in (("primary", self.primary), ("standby", self.standby)):
            if instance is not None and instance.log.exists():
                shutil.copyfile(instance.log, directory / f"{name}.log")

    def close(self) -> None:
        """Stop and remove both, whatever state they are in."""
        for closable in (self.standby, self.link, self.primary):
            if closable is not None:
                with contextlib.suppress(Exception):
                    closable.close()

    def __enter__(self) -> Pair:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def writable(port: int) -> bool:
    """Whether the server on ``port`` accepts writes (is a primary)."""
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="postgres",
            connect_timeout=2, autocommit=True,
        ) as connection:  # fmt: skip
            return not connection.execute("SELECT pg_is_in_recovery()").fetchone()[0]
    except psycopg.OperationalError:
        return False
