"""Keeping the children fed: forking ahead, claiming, handing out jobs.

The claimer owns when to claim (woken by a NOTIFY, an outcome or the poll
interval) and how many: as many jobs as idle children have room for, never
more, so that nothing waits in this worker that another worker could run.

A worker that listens (PostgreSQL) is woken for the jobs it can take (see
``queue.wake``) and polls only as a safeguard, every
``LISTEN_POLL_INTERVAL``. One that cannot listen (MariaDB/MySQL, SQLite)
polls: every ``FAST_POLL`` seconds right after a claim found jobs (more may
follow: a job enqueued in another process cannot wake it), doubling after
each claim that found none, up to ``--poll-interval`` once the queue has
been empty for a while. An idle worker then costs one claim per
``--poll-interval`` (about as many statements as a listening worker's
safeguards and heartbeats), and ``--poll-interval`` bounds its
enqueue-to-start latency; a busy one starts jobs within ``FAST_POLL``.

A claim that failed on an open connection is in doubt: it may have been
committed (``queue.release_claim`` says how and why its jobs go back). The
claimer keeps the token of each, forgets one that never reached the server,
and gives their jobs back before it claims again; while the database is
away, it claims nothing until it could.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.db import DatabaseError, connections

from .. import queue
from ..models import Job
from ..queue.wake import any_ready
from .children import Child, Children
from .fleet import Registry
from .leases import Leases
from .options import WorkerOptions
from .outage import DatabaseHealth, first_line, transient
from .portions import Portions
from .scaling import Scaler
from .shutdown import Shutdown

logger = logging.getLogger("django_jobs.worker")

DB_RETRY_DELAY = 1.0
#: Seconds between the polls of a worker that cannot listen, right after a
#: claim found jobs; doubled after each empty claim up to --poll-interval.
FAST_POLL = 0.05


class Claimer:
    def __init__(
        self,
        options: WorkerOptions,
        worker_id: str,
        *,
        children: Children,
        portions: Portions,
        leases: Leases,
        health: DatabaseHealth,
        shutdown: Shutdown,
        registry: Registry | None = None,
        listening: Callable[[], bool] = lambda: False,
        scaler: Scaler | None = None,
        give_back: Callable[[Job, str], None] = lambda job, why: None,
    ) -> None:
        self.options = options
        self.worker_id = worker_id
        self.db = options.db
        self.children = children
        self.portions = portions
        self.leases = leases
        self.health = health
        self.shutdown = shutdown
        #: Which queues have limits (they are claimed apart): the heartbeat
        #: reads them.
        self.registry = registry
        #: Whether notifications wake this worker (it polls rarely then).
        self.listening = listening
        #: Its size, when it grows and shrinks (else ``--concurrency``).
        self.scaler = scaler
        #: Releases a job just claimed, uncounted (``Recorder.release``).
        self.give_back = give_back
        #: There may be ready jobs: claim at the next chance.
        self.wake = True
        self.next_poll = 0.0
        self.claimed_total = 0
        #: Claim statements run (a figure for the stop line).
        self.claims = 0
        #: Burst mode: the last claim found nothing and nothing runs.
        self.idle_and_empty = False
        #: The tokens of claims that failed but may have been committed.
        self.in_doubt: list[str] = []
        #: Claims in a row that found no job (the poll's backoff).
        self.empty_claims = 0

    # When

    def wake_up(self) -> None:
        self.wake = True

    def on_notify(self, queues: list[str]) -> None:
        """Jobs were enqueued (PostgreSQL NOTIFY): wake if they are ours."""
        served = self.options.queues
        if not served or any(name in served for name in queues):
            self.wake = True

    def wake_at(self, clock: float) -> float | None:
        if not self.may_claim() or not self.rooms():
            return None
        return clock if self.wake else self.next_poll

    def may_claim(self) -> bool:
        if self.shutdown.draining:
            return False
        return not self.options.max_jobs or self.claimed_total < self.options.max_jobs

    def poll_interval(self) -> float:
        if self.listening():
            return self.options.config.LISTEN_POLL_INTERVAL
        fast = FAST_POLL * 2 ** min(self.empty_claims, 30)
        return min(self.options.poll_interval, fast)

    def room(self) -> int:
        """How many more jobs this worker would take now (for its row)."""
        if not self.may_claim():
            return 0
        room = sum(self.rooms().values())
        if self.options.max_jobs:
            room = min(room, self.options.max_jobs - self.claimed_total)
        return room

    def done(self) -> bool:
        """Whether this worker has done what it was asked (--max-jobs, --burst)."""
        if self.options.max_jobs and self.claimed_total >= self.options.max_jobs:
            return True
        return self.options.burst and self.idle_and_empty

    # How many

    def size(self) -> int:
        """Child slots now: jobs running at once."""
        return self.scaler.size if self.scaler else self.options.concurrency

    def refill(self) -> None:
        """Keep one child per slot, forked ahead of the job it will run."""
        wanted = self.size()
        if self.options.max_jobs:
            wanted = min(wanted, self.options.max_jobs - self.claimed_total)
        while self.children.active_count() < wanted:
            if not self.children.fork():
                return

    def rooms(self) -> dict[Child, int]:
        """How many jobs each child may be given now."""
        # A lane child runs its jobs at once: a portion is all it may hold.
        portion = self.options.lane or self.portions.size()
        # A slot is a job running: spare children wait for a free slot.
        free_slots = self.size() - len(self.children.busy)
        rooms = {}
        for candidate in self.children:
            room = self.children.room(candidate, portion)
            if not room:
                continue
            if candidate.jobs:
                # Top up a busy child only by half a portion or more (a
                # lane's: a quarter), so that one claim serves several jobs.
                if room * (4 if self.options.lane else 2) >= portion:
                    rooms[candidate] = room
            elif free_slots > 0:
                rooms[candidate] = room
                free_slots -= 1
        return rooms

    # Claim

    def doubt(self, token: str) -> None:
        """A claim failed: keep its token if it may have been committed. One
        that never reached the server (no connection was open: connecting
        failed) cannot have been, and is forgotten."""
        if connections[self.db].connection is not None:
            self.in_doubt.append(token)

    def tell_room(self, room: int, written: bool) -> None:
        """Have the worker's row say how much room the claim left; if that
        fails, the next heartbeat says it."""
        if self.registry is None:
            return
        try:
            self.registry.claimed(room, written)
        except DatabaseError as exc:
            if transient(exc):
                self.health.failed(exc, "write its room")
            else:
                logger.warning("cannot write the worker's room: %s", exc)

    def release_in_doubt(self) -> bool:
        """Give back the jobs of claims in doubt, if any; False while the
        database is away (they are given back before the next claim)."""
        if not self.in_doubt:
            return True
        try:
            released = queue.release_claim(self.in_doubt, self.worker_id, using=self.db)
        except DatabaseError as exc:
            if transient(exc):
                self.health.failed(exc, "give back a claim in doubt")
                return False
            # Refused, not away: claiming must go on, and the rescuer takes
            # such jobs back once their reservation runs out.
            logger.warning(
                "cannot give back the jobs of a claim in doubt (%s); they are "
                "rescued once their reservation runs out",
                first_line(exc),
            )
            released = []
        else:
            self.health.ok()
        self.in_doubt = []
        if released:
            logger.info(
                "a claim whose reply was lost had reserved %d job(s) (%s); "
                "given back, their attempts not counted",
                len(released),
                ", ".join(map(str, released)),
            )
        return True

    def not_in_hand(self, jobs: list[Job]) -> list[Job]:
        """The jobs claimed, but those whose old run is still in hand.

        A job whose claim was lost (taken back while this worker was stopped)
        may be claimed again by this very worker before its old run has
        ended (cancelled in a lane child, or its child being killed). Two
        runs of one job in hand would be mistaken for one another: the new
        claim is given back, uncounted, and claimed again once the old run
        has ended.
        """
        held = {job.pk for child in self.children for job in child.jobs}
        if not held:
            return jobs
        for job in jobs:
            if job.pk in held:
                self.give_back(job, "its lost claim's run has not ended here yet")
        return [job for job in jobs if job.pk not in held]

    def nothing_ready(self, clock: float) -> bool:
        """MariaDB/MySQL, polling after an empty claim: True if one SELECT
        says no job is ready (the claim, a transaction of four statements
        there, is skipped until the next poll)."""
        if self.wake or not self.empty_claims or self.listening():
            return False
        if connections[self.db].vendor != "mysql":
            return False
        try:
            ready = any_ready(
                self.options.backend.alias,
                queues=list(self.options.queues) or None,
                skip=list(self.options.skipped_queues) or None,
                using=self.db,
            )
        except DatabaseError:
            return False  # the claim meets it, and says so
        if ready:
            return False
        self.empty_claims += 1
        self.next_poll = clock + self.poll_interval()
        self.idle_and_empty = not self.children.busy
        return True

    def claim(self, clock: float) -> None:
        """Claim as many jobs as the children have room for; hand them out."""
        if not self.release_in_doubt():
            self.next_poll = clock + DB_RETRY_DELAY
            self.wake = False
            return
        rooms = self.rooms()
        limit = sum(rooms.values())
        if self.options.max_jobs:
            limit = min(limit, self.options.max_jobs - self.claimed_total)
        if limit < 1 or not (self.wake or clock >= self.next_poll):
            return
        if self.nothing_ready(clock):
            return
        self.claims += 1
        writes_room = self.registry is not None and self.registry.claim_writes_room()
        token = queue.new_claim_token()
        try:
            jobs = queue.claim(
                worker_id=self.worker_id,
                queues=self.options.queues or None,
                limit=limit,
                backend=self.options.backend.alias,
                using=self.db,
                prepare=True,
                limited=self.registry.limited_queues if self.registry else None,
                room=writes_room,
                token=token,
                skip=self.options.skipped_queues,
            )
        except DatabaseError as exc:
            self.doubt(token)
            if transient(exc):
                self.health.failed(exc, "claim jobs")
            else:
                logger.exception("cannot claim jobs; will try again")
                connections[self.db].close()
            self.next_poll = clock + DB_RETRY_DELAY
            self.wake = False
            return
        self.health.ok()
        jobs = self.not_in_hand(jobs)
        self.claimed_total += len(jobs)
        room = limit - len(jobs)
        self.empty_claims = 0 if jobs else self.empty_claims + 1
        if len(jobs) < limit:
            self.wake = False
            self.next_poll = clock + self.poll_interval()
        self.idle_and_empty = not jobs and not self.children.busy
        # Idle children first, so that every job starts as soon as possible.
        for taker in sorted(rooms, key=lambda c: len(c.jobs)):
            given, jobs = jobs[: rooms[taker]], jobs[rooms[taker] :]
            if given:
                self.children.dispatch(taker, given)
                self.leases.expect(given)
        if self.scaler:
            self.scaler.claimed(limit, limit - room)
        self.tell_room(room, writes_room)  # once the jobs are on their way
