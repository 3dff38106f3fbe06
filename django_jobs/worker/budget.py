"""The fleet's database connection budget (``OPTIONS["CONNECTION_BUDGET"]``).

A fleet of autoscaling workers could together open more connections than
the server allows, and the server refuses the next one: often a web
request's. So each worker says in its row how many connections it may hold
at its current size (``Worker.connections``), and a worker grows only if the
live workers' rows, added up with its growth, stay within the budget.

What a worker holds (see child_connections.py and listener.py): the
supervisor's connection, its LISTEN connection on PostgreSQL, and per child
slot two: the child running a job and the spare forked ahead of the next
job (a child connects only once its jobs use the database; the budget
counts the worst case). Connections that jobs open to other databases are
not this server's and are not counted.

Growth is decided in one short transaction that serialises the growers: on
PostgreSQL a transaction-level advisory lock, on SQLite the write lock (the
transaction writes first), on MariaDB/MySQL a named lock (``GET_LOCK``,
held by the session, released when the transaction ends: MariaDB has no
transaction-level advisory lock, and a row lock would need a row every
worker shares). A worker whose row is silent past
``WORKER_TIMEOUT`` is not counted: it is presumed dead, and so are its
connections. The budget covers every worker recorded in the database, of
any backend: they share the server's connections.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.core.management.base import CommandError
from django.db import DatabaseError, transaction
from django.db import connections as databases
from django.db.models import Count, F, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..models import Worker
from ..vendors import CONNECTIONS_PER_SLOT as PER_SLOT
from ..vendors import worker_connections
from .options import WorkerOptions

#: The key of the advisory lock growers take on PostgreSQL ("djobs" in
#: ASCII); a one-key lock, apart from the listeners' two-key ones.
SCALING_LOCK = 0x646A6F6273
#: Seconds a MariaDB/MySQL grower waits for the named lock before giving up.
LOCK_WAIT = 30


def overhead(db: str) -> int:
    """The supervisor's connection, and its listener's on PostgreSQL."""
    return worker_connections(databases[db].vendor, 0)


def connections_at(db: str, size: int) -> int:
    """The connections a worker may hold with ``size`` child slots."""
    return worker_connections(databases[db].vendor, size)


@dataclass(frozen=True, slots=True)
class Fleet:
    """The other live workers: how many, and the connections they may hold."""

    workers: int
    connections: int

    def describe(self, budget: int) -> str:
        return (
            f"connection budget {budget} reached ({self.connections} used by "
            f"{self.workers} other worker(s))"
        )


class Budget:
    """One worker's view of the budget: its admission at start, then its growth."""

    def __init__(self, options: WorkerOptions, worker_id: str) -> None:
        self.db = options.db
        self.worker_id = worker_id
        self.limit = options.config.CONNECTION_BUDGET
        self.timeout = options.config.WORKER_TIMEOUT
        self.least = options.concurrency
        #: Jobs reach the database through a pooler (``WORKER_DATABASE`` is
        #: the supervisor's direct way round it).
        self.pooled = options.config.WORKER_DATABASE is not None

    def check_server(self) -> None:
        """Refuse to start, in one line, with a budget that cannot work: below
        this worker's own minimum, or above the server's ``max_connections``
        (unless the jobs go through a pooler, whose clients the budget counts)."""
        if self.limit is None:
            return
        least = connections_at(self.db, self.least)
        if self.limit < least:
            raise CommandError(
                f"OPTIONS['CONNECTION_BUDGET'] is {self.limit}, below this worker's "
                f"minimum of {least} connections at {self.least} child(ren): "
                "raise the budget or lower --concurrency MIN."
            )
        if self.pooled:  # the children count against the pooler, not the server
            return
        allowed = max_connections(self.db)
        if allowed is not None and self.limit > allowed:
            raise CommandError(
                f"OPTIONS['CONNECTION_BUDGET'] is {self.limit}, above the server's "
                f"max_connections ({allowed}): it would not protect the server."
            )

    @contextlib.contextmanager
    def admitting(self, size: int) -> Iterator[None]:
        """Around the creation of the worker's row: refuse (CommandError) if
        its minimum does not fit beside the live workers' connections."""
        if self.limit is None:
            yield
            return
        with self.serialised():
            fleet = self.others()
            needed = connections_at(self.db, size)
            if fleet.connections + needed > self.limit:
                raise CommandError(
                    f"not starting: {fleet.describe(self.limit)}; this worker needs "
                    f"{needed} at its minimum of {size} child(ren). Raise "
                    "OPTIONS['CONNECTION_BUDGET'], or start it once others shrink."
                )
            yield

    def grow(self, size: int, wanted: int) -> tuple[int, str]:
        """Take room for up to ``wanted`` slots (from ``size``); the size
        granted (``size`` when nothing fits) and, if short, why."""
        if self.limit is None:
            self.publish(wanted, wanted)
            return wanted, ""
        with self.serialised():
            fleet = self.others()
            spare = self.limit - fleet.connections - overhead(self.db)
            granted = min(wanted, spare // PER_SLOT)
            if granted <= size:
                return size, fleet.describe(self.limit)
            self.publish(granted, granted)
        short = fleet.describe(self.limit) if granted < wanted else ""
        return granted, short

    def publish(self, size: int, slots: int) -> None:
        """Write the worker's size, and the connections it may hold now: at
        ``slots``, more than ``size`` while the children of a shrink exit."""
        Worker.objects.using(self.db).filter(pk=self.worker_id).update(
            concurrency=size, connections=connections_at(self.db, slots)
        )

    @contextlib.contextmanager
    def serialised(self) -> Iterator[None]:
        with transaction.atomic(using=self.db):
            connection = databases[self.db]
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SCALING_LOCK])
            elif connection.vendor == "mysql":
                with named_lock(connection):
                    yield
                return
            else:  # a write first takes SQLite's lock, whatever the mode
                Worker.objects.using(self.db).filter(pk=self.worker_id).update(
                    connections=F("connections")
                )
            yield

    def others(self) -> Fleet:
        """The live workers other than this one, from their rows. A row
        older than its ``connections`` column counts as a fixed worker."""
        silent_since = timezone.now() - timedelta(seconds=self.timeout)
        estimate = overhead(self.db) + PER_SLOT * F("concurrency")
        totals = (
            Worker.objects.using(self.db)
            .filter(last_heartbeat__gte=silent_since)
            .exclude(pk=self.worker_id)
            .aggregate(n=Count("pk"), used=Sum(Coalesce("connections", estimate)))
        )
        return Fleet(workers=totals["n"], connections=totals["used"] or 0)


@contextlib.contextmanager
def named_lock(connection) -> Iterator[None]:
    """MariaDB/MySQL: hold the budget's named lock (server-wide, so named
    after the database) until the block ends."""
    name = f"django_jobs_scaling:{connection.settings_dict['NAME']}"[:64]
    with connection.cursor() as cursor:
        cursor.execute("SELECT GET_LOCK(%s, %s)", [name, LOCK_WAIT])
        if cursor.fetchone()[0] != 1:
            raise DatabaseError(f"could not take the lock {name!r} in {LOCK_WAIT} s")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT RELEASE_LOCK(%s)", [name])


def max_connections(db: str) -> int | None:
    """The server's ``max_connections`` (PostgreSQL: less the slots kept for
    superusers; MariaDB/MySQL keep theirs beyond it); None where it cannot
    be read."""
    connection = databases[db]
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT @@max_connections")
            return int(cursor.fetchone()[0])
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('max_connections')::int"
            " - current_setting('superuser_reserved_connections')::int"
        )
        return cursor.fetchone()[0]
