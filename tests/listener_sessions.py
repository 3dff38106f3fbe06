"""Real PostgreSQL sessions, and ears on workers' channels, for the tests of
wake-ups that skip a worker whose LISTEN session has ended."""

from __future__ import annotations

import select
import time

import psycopg
from django.db import connection

from django_jobs import queue
from django_jobs.models import Worker
from django_jobs.queue.wake import LISTENER_LOCK


def connect() -> psycopg.Connection:
    """A connection of its own to the test database (autocommit)."""
    return psycopg.connect(**connection.get_connection_params(), autocommit=True)


class Session:
    """A real database session, which may hold a listener's lock, as a
    worker's listener session does."""

    def __init__(self) -> None:
        self.connection = connect()
        self.pid = self.connection.info.backend_pid

    def recorded_by(self, name: str, lock: bool = True) -> None:
        """Take the listener's lock and write the pid into worker ``name``'s
        row (``lock=False``: a session the server gave a dead worker's pid)."""
        if lock:
            self.connection.execute(
                "SELECT pg_advisory_lock(%s, pg_backend_pid())", [LISTENER_LOCK]
            )
        Worker.objects.filter(pk=name).update(listener_pid=self.pid)

    def end(self) -> None:
        """Close it, as the kernel does when its process dies."""
        self.connection.close()
        wait_ended(self.pid)


def alive(pid: int) -> bool:
    """Whether the server has a session with this pid."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(%s))", [pid])
        return cursor.fetchone()[0]


def wait_ended(pid: int, timeout: float = 10) -> None:
    """Wait (bounded) until the server's backend for a closed session is gone."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, (
            f"session {pid} still there after {timeout} s"
        )
        time.sleep(0.02)


class Ears:
    """A connection that LISTENs on workers' channels, and what it heard."""

    def __init__(self, *workers: str) -> None:
        self.connection = connect()
        self.names = {queue.channel(name): name for name in workers}
        for channel in self.names:
            self.connection.execute(f"LISTEN {channel}")

    def heard(self, expected: int = 0, wait: float = 1.0) -> list[str]:
        """The workers notified: until ``expected`` of them were, or until
        ``wait`` seconds pass without a notification."""
        heard: list[str] = []
        socket = self.connection.pgconn.socket
        while not expected or len(heard) < expected:
            if not select.select([socket], [], [], wait)[0]:
                break
            self.connection.pgconn.consume_input()
            while (notify := self.connection.pgconn.notifies()) is not None:
                heard.append(self.names[notify.relname.decode()])
        return heard

    def close(self) -> None:
        self.connection.close()
