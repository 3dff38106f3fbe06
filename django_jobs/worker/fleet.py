"""A worker among others: its row, its heartbeat, and the fleet's lease.

Every worker heartbeats its row (``Worker``): proof that it lives, how many
jobs it holds, and how many more it could take (``room``: a new job wakes
workers with room, see ``queue.wake``). The same statement tries to renew
or take the fleet's lease (``Lease``, one per backend) and reads which
queues have limits. The worker that holds the lease runs the duties the
fleet needs once, not once per worker (the rescuer, the scheduler, the
pruner, the look for due jobs: ``Duty.fleet_wide``); the others run none.
A lease its holder does not renew expires after ``LEASE_BEATS`` heartbeats,
and the next worker to heartbeat takes it: a dead or stalled leader is
replaced without anyone deciding so. Two leaders at once (a stalled one
that wakes up before it learns that it lost the lease) do no harm: every
duty's writes are guarded, as they were when every worker ran them all.

A worker that stops heartbeating (SIGKILLed, its host gone) keeps its row
until the rescuer presumes it dead (``WORKER_TIMEOUT``, a minute by
default), but it must not keep taking the wake-ups meant for live workers
that long. So each heartbeat also sets to zero the room of the other workers
silent for ``WAKE_BEATS`` heartbeats: ``django_jobs_wake`` wakes only
workers with room. Nothing else changes for such a worker: if it was only
late, its next heartbeat (or claim) writes its room again. This rule is the
slow one, for a host that vanished (the server keeps its sessions open until
TCP keepalives expire); a worker that died on a live host is passed over
from the moment its LISTEN session ends (see ``listener.py``).

On PostgreSQL the heartbeat is one statement; on SQLite, three.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from datetime import timedelta

from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from .. import queue
from ..models import Lease, Worker
from .budget import Budget, connections_at
from .duty import Duty
from .options import WorkerOptions

logger = logging.getLogger("django_jobs.worker")

#: A lease lasts this many heartbeats: a leader that misses fewer keeps it.
LEASE_BEATS = 3
#: A worker silent for this many heartbeats is woken no more (its room is
#: set to zero) until it heartbeats again. Heartbeats are jittered by 10%,
#: so a live worker is never this late unless it or its database stalls.
WAKE_BEATS = 2


def new_worker_id() -> str:
    host = socket.gethostname()[:40]
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Registry(Duty):
    """The worker's row and its share of the fleet: created at start,
    heartbeated, removed at exit; the lease taken, renewed and released."""

    def __init__(
        self,
        options: WorkerOptions,
        worker_id: str,
        room: Callable[[], int],
        sizes: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        super().__init__()
        self.options = options
        self.backend = options.backend.alias
        self.worker_id = worker_id
        self.db = options.db
        self.interval = options.config.HEARTBEAT_INTERVAL
        self.lease_seconds = LEASE_BEATS * self.interval
        #: How many more jobs the worker could take now.
        self.room = room
        #: The row's fields about the worker's size (scaling.Scaler.row).
        self.sizes = sizes or self.fixed_size
        self.budget = Budget(options, worker_id)
        #: The room its row says it has, as the last claim or heartbeat wrote
        #: it; only notifications read it, so only PostgreSQL writes it.
        self.room_written: int | None = None
        self.advertises = connections[self.db].vendor == "postgresql"
        self.jobs_in_hand = 0
        #: The queues with a concurrency or rate limit (claimed apart).
        self.limited_queues: list[str] = []
        #: Until when (monotonic) this worker may act as the fleet's leader:
        #: a heartbeat short of when the lease it renewed expires.
        self.leading_until = 0.0
        #: Whether to log when it starts or stops leading (not before the
        #: start banner, which says whether it leads).
        self.announce = False
        #: Another worker's rescuer removed this one's row: its jobs may
        #: have been taken back (the supervisor then checks its claims).
        self.presumed_dead = False

    def fixed_size(self) -> dict[str, int]:
        size = self.options.concurrency
        return {
            "concurrency": size,
            "min_concurrency": size,
            "max_concurrency": size,
            "connections": connections_at(self.db, size),
        }

    def register(self, *, again: bool = False) -> None:
        """Create the row, then heartbeat at once: the first worker of a
        fleet leads from its start. Within the connection budget: a worker
        whose size does not fit beside the live ones' is refused (budget.py);
        not one registering ``again``, whose connections are open already."""
        sizes = self.sizes()
        admission = (
            contextlib.nullcontext()
            if again
            else self.budget.admitting(sizes["concurrency"])
        )
        with admission:
            Worker.objects.using(self.db).create(
                id=self.worker_id,
                backend=self.backend,
                hostname=socket.gethostname()[:255],
                pid=os.getpid(),
                queues=list(self.options.queues),
                skipped_queues=list(self.options.skipped_queues),
                room=self.room(),
                **sizes,
            )
        self.beat()
        self.next_run = time.monotonic() + self.interval

    def leads(self, clock: float) -> bool:
        return clock < self.leading_until

    def run_once(self) -> None:
        if not self.beat():
            logger.warning(
                "worker %s was presumed dead by another worker (its jobs may have "
                "been rescued); registering again",
                self.worker_id,
            )
            self.presumed_dead = True
            self.register(again=True)

    def beat(self) -> bool:
        """Heartbeat, renew or take the lease, read the limited queues;
        False if the row is gone."""
        started = time.monotonic()
        now = timezone.now()
        values = {
            "now": now,
            "until": now + timedelta(seconds=self.lease_seconds),
            "silent_since": now - timedelta(seconds=WAKE_BEATS * self.interval),
            "hand": self.jobs_in_hand,
            "room": self.room(),
            "me": self.worker_id,
            "backend": self.backend,
        }
        vendor = connections[self.db].vendor
        if vendor == "postgresql":
            alive, leads, self.limited_queues = self._beat_postgresql(values)
        elif vendor == "mysql":
            alive, leads, self.limited_queues = self._beat_mysql(values)
        else:
            alive, leads, self.limited_queues = self._beat(values)
        self.room_written = values["room"] if alive else None
        was_leading = self.leads(started)
        self.leading_until = started + self.lease_seconds - self.interval
        if not leads:
            self.leading_until = 0.0
        if self.announce and leads != was_leading:
            if leads:
                logger.info(
                    "worker %s now runs the fleet's duties (rescue, schedules, "
                    "pruning, waking workers for due jobs)",
                    self.worker_id,
                )
            else:  # it stalled, or the database was away: another took over
                logger.info(
                    "worker %s no longer runs the fleet's duties", self.worker_id
                )
        return alive

    def _beat_postgresql(self, values: dict) -> tuple[bool, bool, list[str]]:
        with connections[self.db].cursor() as cursor:
            cursor.execute(HEARTBEAT, values)
            alive, leads, limited = cursor.fetchone()
        return bool(alive), bool(leads), sorted(limited)

    def _beat_mysql(self, values: dict) -> tuple[bool, bool, list[str]]:
        """Three autocommit statements, no transaction: MariaDB has no
        data-modifying CTE nor RETURNING on UPDATE, and a transaction would
        add its own statements to every idle worker's beat."""
        connection = connections[self.db]
        adapt = connection.ops.adapt_datetimefield_value
        params = {
            **values,
            "now": adapt(values["now"]),
            "until": adapt(values["until"]),
        }
        with connection.cursor() as cursor:
            cursor.execute(MYSQL_BEAT, params)
            alive = cursor.rowcount > 0  # matched rows (Django's FOUND_ROWS)
            if alive:
                cursor.execute(MYSQL_LEASE, params)
            cursor.execute(MYSQL_READ, params)
            rows = cursor.fetchall()
        leads = alive and (self.worker_id, 1) in rows
        limited = sorted(name for name, kind in rows if kind == 0)
        return alive, leads, limited

    def _beat(self, values: dict) -> tuple[bool, bool, list[str]]:
        with transaction.atomic(using=self.db):
            alive = (
                Worker.objects.using(self.db)
                .filter(pk=self.worker_id)
                .update(
                    last_heartbeat=values["now"],
                    jobs_in_hand=values["hand"],
                    room=values["room"],
                )
            )
            leads = bool(alive) and self._take_lease(values)
        limited = queue.limited_queues(self.backend, using=self.db)
        return bool(alive), bool(leads), sorted(limited)

    def _take_lease(self, values: dict) -> bool:
        """Renew or take the lease, creating its row if it has none."""
        leases = Lease.objects.using(self.db)
        _, created = leases.get_or_create(
            name=self.backend,
            defaults={"holder": self.worker_id, "expires_at": values["until"]},
        )
        return created or bool(
            leases.filter(name=self.backend)
            .filter(Q(holder=self.worker_id) | Q(expires_at__lt=values["now"]))
            .update(holder=self.worker_id, expires_at=values["until"])
        )

    def claim_writes_room(self) -> bool:
        """Whether the claim statement should also write the worker's room.

        Yes while the row says the worker has room: the claim changes that.
        Not while it says none: a claim that fills the worker up again (every
        claim in a backlog) leaves it so, and a statement that writes nothing
        still costs the database a sixth of a claim.
        """
        return self.advertises and self.room_written != 0

    def claimed(self, room: int, written: bool) -> None:
        """After a claim: the room it left, which the row must say (one
        statement, when the claim did not write it and it changed)."""
        if written:
            self.room_written = room
        elif self.advertises and room != self.room_written:
            Worker.objects.using(self.db).filter(pk=self.worker_id).update(room=room)
            self.room_written = room

    def deregister(self) -> None:
        """Remove the row and hand the lease back, so that another worker
        takes it at its next heartbeat rather than when it expires."""
        Worker.objects.using(self.db).filter(pk=self.worker_id).delete()
        if self.leading_until:
            Lease.objects.using(self.db).filter(
                name=self.backend, holder=self.worker_id
            ).update(holder="", expires_at=timezone.now())
            self.leading_until = 0.0


# Parameters by name (psycopg's pyformat). The lease is taken only by a live
# row (a worker presumed dead registers again before it may lead), and its
# row is created if it has none (the first worker, or a table emptied by hand).
# Silent workers lose their room (see the module's docstring); a row that
# another statement holds is skipped, not waited for: two workers that came
# back together from a stall must not wait for each other's rows.
HEARTBEAT = """
WITH beat AS (
    UPDATE django_jobs_worker
    SET last_heartbeat = %(now)s, jobs_in_hand = %(hand)s, room = %(room)s
    WHERE id = %(me)s
    RETURNING id
), silent AS (
    UPDATE django_jobs_worker SET room = 0
    WHERE id IN (
        SELECT id FROM django_jobs_worker
        WHERE backend = %(backend)s AND id <> %(me)s AND room > 0
          AND last_heartbeat < %(silent_since)s
        FOR UPDATE SKIP LOCKED
    )
), lease AS (
    INSERT INTO django_jobs_lease (name, holder, expires_at)
    SELECT %(backend)s, %(me)s, %(until)s WHERE EXISTS (SELECT 1 FROM beat)
    ON CONFLICT (name) DO UPDATE
    SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
    WHERE django_jobs_lease.holder = %(me)s OR django_jobs_lease.expires_at < %(now)s
    RETURNING name
)
SELECT
    EXISTS (SELECT 1 FROM beat),
    EXISTS (SELECT 1 FROM lease),
    ARRAY(
        SELECT name FROM django_jobs_queue
        WHERE backend = %(backend)s
          AND (max_concurrency IS NOT NULL OR rate_limit IS NOT NULL
               OR key_concurrency IS NOT NULL OR key_rate_limit IS NOT NULL)
    )
"""


# MariaDB/MySQL (format parameters by name, as mysqlclient takes them). The
# upsert takes the lease only from its holder or once it expired: the second
# assignment sees the first's result (MySQL assigns left to right), so the
# expiry moves only if the holder is now this worker. Read back in the same
# statement as the limited queues (kind 1: the lease's holder).
MYSQL_BEAT = """
UPDATE django_jobs_worker
SET last_heartbeat = %(now)s, jobs_in_hand = %(hand)s, room = %(room)s
WHERE id = %(me)s
"""
MYSQL_LEASE = """
INSERT INTO django_jobs_lease (name, holder, expires_at)
VALUES (%(backend)s, %(me)s, %(until)s)
ON DUPLICATE KEY UPDATE
    holder = IF(holder = %(me)s OR expires_at < %(now)s, %(me)s, holder),
    expires_at = IF(holder = %(me)s, %(until)s, expires_at)
"""
MYSQL_READ = """
SELECT name, 0 FROM django_jobs_queue
WHERE backend = %(backend)s
  AND (max_concurrency IS NOT NULL OR rate_limit IS NOT NULL
       OR key_concurrency IS NOT NULL OR key_rate_limit IS NOT NULL)
UNION ALL
SELECT holder, 1 FROM django_jobs_lease WHERE name = %(backend)s
"""


class DueLook(Duty):
    """Wakes workers with room for ready jobs that no notification announced:
    delayed jobs coming due, and jobs whose woken worker had filled up in the
    meantime (see ``queue.wake``). PostgreSQL only; run by the leader."""

    fleet_wide = True

    def __init__(self, options: WorkerOptions) -> None:
        super().__init__()
        self.backend = options.backend.alias
        self.db = options.db
        self.interval = options.poll_interval

    def run_once(self) -> int:
        return queue.wake_due(self.backend, using=self.db)
