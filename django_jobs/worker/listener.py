"""LISTEN for new jobs on PostgreSQL, so idle workers wake within milliseconds.

Each worker listens on a channel of its own (``queue.channel``): a new job
wakes the workers with room for it, not every worker (see ``queue.wake``).
The listener has a connection of its own (autocommit: LISTEN, and a write
of its session when it connects), separate from the supervisor's query
connection, so that Django closing or replacing that connection never
silences it. If it breaks (a restart, a failover, ``pg_terminate_backend``),
it connects again at once, as the supervisor's connection does; if that
fails, the worker polls meanwhile and tries again after ``RECONNECT_FIRST``
seconds, doubling up to ``RECONNECT_DELAY``.

Each time it connects, it records its session in the worker's row
(``RECORD_SESSION``): that is how ``queue.wake`` tells a worker that
listens from one that died or whose listener broke.
"""

from __future__ import annotations

import contextlib
import logging
import time

from django.db import connections

from ..queue.wake import LISTENER_LOCK
from .outage import first_line

logger = logging.getLogger("django_jobs.worker")

#: Seconds before the second try to connect, doubling after each failure.
RECONNECT_FIRST = 0.5
#: The longest wait between two tries.
RECONNECT_DELAY = 5.0

# The session takes its lock, (LISTENER_LOCK, its server pid), for as long
# as it lives, and writes the pid into the row whose wake-ups come on this
# channel, named as django_jobs_wake names it (and queue.channel): the one
# worker that LISTENs here. The table is a row per worker: scanning it once
# per connection costs nothing. Only if another session holds the key (one
# that tried it for a dead worker whose pid this session now has, until its
# transaction ends) does the row say NULL: woken by room and heartbeat.
RECORD_SESSION = f"""
WITH session AS (
    SELECT pg_backend_pid() AS pid,
           pg_try_advisory_lock({LISTENER_LOCK}, pg_backend_pid()) AS locked
)
UPDATE django_jobs_worker
SET listener_pid = CASE WHEN session.locked THEN session.pid END
FROM session
WHERE 'django_jobs_' || substr(md5(id), 1, 16) = %(channel)s
"""


class Listener:
    def __init__(self, db: str, channel: str) -> None:
        self.db = db
        self.channel = channel
        self.connection = None
        self.retry_at = 0.0
        #: Whether the last attempt failed: the next failures are not news.
        self.failing = False
        #: Tries to connect that failed in a row (the backoff).
        self.failures = 0

    @property
    def available(self) -> bool:
        return connections[self.db].vendor == "postgresql"

    def connect(self) -> bool:
        """Open the connection and LISTEN; False (and retry later) on failure."""
        if not self.available or self.connection is not None:
            return self.connection is not None
        if time.monotonic() < self.retry_at:
            return False
        import psycopg

        wrapper = connections[self.db]
        params = wrapper.get_connection_params()
        try:
            self.connection = psycopg.connect(**params, autocommit=True)
            self.connection.execute(f"LISTEN {self.channel}")
            self.record_session()
        except psycopg.Error as exc:
            level = logging.DEBUG if self.failing else logging.WARNING
            logger.log(
                level,
                "cannot LISTEN for new jobs (%s); polling meanwhile",
                first_line(exc),
            )
            self.failing = True
            self.close()
            wait = min(RECONNECT_DELAY, RECONNECT_FIRST * 2**self.failures)
            self.failures += 1
            self.retry_at = time.monotonic() + wait
            return False
        if self.failing:
            logger.info("listening for new jobs again")
            self.failing = False
        self.failures = 0
        return True

    def record_session(self) -> None:
        """Take the session's lock and write its pid into the worker's row,
        after LISTEN (so that a wake-up the row lets through is heard): one
        statement per connection, none per heartbeat. If it fails, the
        connection is given up and tried again later, as when LISTEN fails;
        meanwhile the row names an ended session (or none), and rightly so."""
        self.connection.execute(RECORD_SESSION, {"channel": self.channel})

    def listening(self) -> bool:
        return self.connection is not None

    def fileno(self) -> int:
        return self.connection.pgconn.socket

    def queues(self) -> list[str] | None:
        """The queues notified since the last call; ``None`` if the link broke."""
        pgconn = self.connection.pgconn
        try:
            pgconn.consume_input()
        except Exception as exc:
            # Usually replaced at once (a restart, pg_terminate_backend): no
            # news unless connecting again fails too (then a warning).
            logger.info(
                "lost the LISTEN connection (%s); connecting again", first_line(exc)
            )
            self.close()
            self.retry_at = 0.0
            return None
        queues = []
        while (notify := pgconn.notifies()) is not None:
            queues.append(notify.extra.decode())
        return queues

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                self.connection.close()
            self.connection = None
