"""How the supervisor keeps its children fed: forks ahead, claims, hands out."""

from __future__ import annotations

import logging

from django.db import DatabaseError, connections

from .. import queue
from .children import Child
from .health import transient

logger = logging.getLogger("django_jobs.worker")

DB_RETRY_DELAY = 1.0


class Claiming:
    """Part of ``Supervisor``: its slots, its claims and who gets which job."""

    def replenish(self) -> None:
        """Keep one child per slot, forked ahead of the job it will run."""
        wanted = self.options.concurrency
        if self.options.max_jobs:
            wanted = min(wanted, self.options.max_jobs - self.claimed_total)
        while self.children.active_count() < wanted:
            self.children.fork()

    def may_claim(self) -> bool:
        if self.draining:
            return False
        return not self.options.max_jobs or self.claimed_total < self.options.max_jobs

    def rooms(self) -> dict[Child, int]:
        """How many jobs each child may be given now."""
        batch = self.batching.per_child()
        # A slot is a job running: spare children wait for a free slot.
        free_slots = self.options.concurrency - len(self.children.busy)
        rooms = {}
        for candidate in self.children:
            room = self.children.room(candidate, batch)
            if not room:
                continue
            if candidate.queue:
                # Top up a busy child only by half a batch or more, so that
                # one claim serves several jobs.
                if room * 2 >= batch:
                    rooms[candidate] = room
            elif free_slots > 0:
                rooms[candidate] = room
                free_slots -= 1
        return rooms

    def claim(self, clock: float) -> None:
        """Claim as many jobs as the children have room for; hand them out."""
        rooms = self.rooms()
        limit = sum(rooms.values())
        if self.options.max_jobs:
            limit = min(limit, self.options.max_jobs - self.claimed_total)
        if limit < 1 or not (self.wake or clock >= self.next_poll):
            return
        try:
            jobs = queue.claim(
                worker_id=self.worker_id,
                queues=self.options.queues or None,
                limit=limit,
                backend=self.options.backend.alias,
                using=self.db,
                prepare=True,
                limited=self.limits.names,
            )
        except DatabaseError as exc:
            if transient(exc):
                self.health.failed(exc, "claim jobs")
            else:
                logger.exception("cannot claim jobs; will try again")
                connections[self.db].close()
            self.next_poll = clock + DB_RETRY_DELAY
            self.wake = False
            return
        self.health.ok()
        self.claimed_total += len(jobs)
        if len(jobs) < limit:
            self.wake = False
            self.next_poll = clock + self.options.poll_interval
        self.idle_and_empty = not jobs and not self.children.busy
        # Idle children first, so that every job starts as soon as possible.
        for taker in sorted(rooms, key=lambda c: len(c.queue)):
            given, jobs = jobs[: rooms[taker]], jobs[rooms[taker] :]
            if given:
                self.children.dispatch(taker, given)
                self.leases.expect(given)
