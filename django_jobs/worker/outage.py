"""The worker's view of its database: one line when it goes, one when it is back.

While the database is away every statement fails: logging each failure would
bury the one line that matters under thousands. ``DatabaseHealth`` says it
once, with the reason, reminds every ``REMIND_EVERY`` seconds, and says how
long it lasted when a statement gets through again. The traceback goes to
DEBUG, once.

A connection the server closed (a restart, a failover, ``pg_terminate_backend``,
a pooler letting go) is not an outage: a new one usually opens at once. So the
first failure on an open connection is tried again at once, and is no news
unless that try fails too (a line at INFO, at most one every ``REMIND_EVERY``
seconds, counts them). Once the database is away, the next try comes after
``RETRY_FIRST`` seconds, doubling up to ``RETRY_MAX``: ``retry_at`` says when,
for everything in the supervisor that waits for the database.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError, InterfaceError, OperationalError, connections

from ..exceptions import sqlstate

logger = logging.getLogger("django_jobs.worker")

REMIND_EVERY = 30.0
#: Seconds before the second try while the database is away, doubling after.
RETRY_FIRST = 0.1
#: The longest wait between two tries while the database is away.
RETRY_MAX = 1.0


#: SQLSTATE read_only_sql_transaction: the server is a standby, or a primary
#: that was demoted, reached before a failover completed (a multi-host setting
#: that tried a read-only host, a proxy that kept its sessions).
READ_ONLY = "25006"
#: MariaDB/MySQL's: --read-only (or super_read_only) refuses the statement,
#: or a read-only transaction does.
MYSQL_READ_ONLY = {1290, 1792, 1836}
#: MariaDB/MySQL's server errors that say it is unavailable rather than that
#: it refuses what was asked (whose errors, a trigger's SIGNAL among them,
#: mysqlclient raises as OperationalError too): too many connections,
#: shutting down, lock wait timeout, deadlock, query interrupted, connection
#: killed, closed for inactivity. The client's own (2000 and up: cannot
#: connect, server gone away, connection lost) are all of this kind.
MYSQL_UNAVAILABLE = {
    1040, 1053, 1077, 1078, 1079, 1080, 1152, 1158, 1159, 1160, 1161, 1205, 1213,
    1317, 1927, 4031,
} | MYSQL_READ_ONLY  # fmt: skip
MYSQL_CLIENT_ERRORS = 2000


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unavailable (worth waiting for),
    rather than that it refuses what was asked (never worth retrying).

    A read-only server is unavailable to the worker: once the connection is
    closed, the next one may reach the new primary."""
    from ..queue.mysql import error_number

    if (number := error_number(exc)) is not None:  # MariaDB/MySQL: it says
        return number >= MYSQL_CLIENT_ERRORS or number in MYSQL_UNAVAILABLE
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    if not isinstance(exc, DatabaseError):
        return False
    return sqlstate(exc) == READ_ONLY


def first_line(exc: BaseException) -> str:
    """The first line of what ``exc`` says (libpq's messages run over several):
    a log line stays one line."""
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


class DatabaseHealth:
    def __init__(self, db: str) -> None:
        self.db = db
        #: When statements began to fail (None while they get through).
        self.lost_at: float | None = None
        #: Whether the outage was logged (a connection dropped once is not).
        self.announced = False
        #: Tries that failed since the database was last seen (the backoff).
        self.failures = 0
        #: When the database is next worth a try (monotonic).
        self.retry_at = 0.0
        self.next_reminder = 0.0
        #: Why the connection last dropped, and drops not logged since.
        self.dropped_because = ""
        self.drops = 0
        self.next_drop_note = 0.0

    @property
    def away(self) -> bool:
        """Whether the last statement failed and none has got through since."""
        return self.lost_at is not None

    def due(self, clock: float) -> bool:
        """Whether a statement is worth trying at ``clock``."""
        return clock >= self.retry_at

    def failed(self, exc: DatabaseError, doing: str) -> None:
        """A statement failed because the database is unavailable."""
        now = time.monotonic()
        dropped = connections[self.db].connection is not None
        # Django would keep the broken connection: open a new one next time.
        connections[self.db].close()
        if self.lost_at is None and dropped:
            self.lost_at = self.retry_at = now  # try a new connection at once
            self.dropped_because = first_line(exc)
            logger.debug("the connection broke, trying to %s:", doing, exc_info=exc)
            return
        if self.lost_at is None:
            self.lost_at = now
        self.retry_at = now + min(RETRY_MAX, RETRY_FIRST * 2**self.failures)
        self.failures += 1
        if not self.announced:
            self.announce(exc, doing, now)
        elif now >= self.next_reminder:
            self.next_reminder = now + REMIND_EVERY
            logger.warning(
                "database %r still unavailable after %.0f s (%s)",
                self.db,
                now - self.lost_at,
                first_line(exc),
            )

    def announce(self, exc: DatabaseError, doing: str, now: float) -> None:
        self.announced, self.next_reminder = True, now + REMIND_EVERY
        logger.warning(
            "database %r unavailable (%s); outcomes, touches and checkpoints "
            "wait and no job is claimed until it is back",
            self.db,
            first_line(exc),
        )
        logger.debug("the first failure, trying to %s:", doing, exc_info=exc)

    def ok(self) -> None:
        """A statement got through."""
        if self.lost_at is None:
            return
        now = time.monotonic()
        if self.announced:
            logger.info("database %r back after %.1f s", self.db, now - self.lost_at)
        else:
            self.reconnected(now)
        self.lost_at, self.announced, self.failures = None, False, 0
        self.retry_at = 0.0

    def reconnected(self, now: float) -> None:
        """A dropped connection was replaced at once: noted, not alarmed."""
        if now < self.next_drop_note:
            self.drops += 1
            logger.debug("database %r: reconnected at once", self.db)
            return
        more = f" ({self.drops} more since it last said so)" if self.drops else ""
        logger.info(
            "database %r closed the worker's connection (%s); it reconnected at once%s",
            self.db,
            self.dropped_because,
            more,
        )
        self.drops, self.next_drop_note = 0, now + REMIND_EVERY
