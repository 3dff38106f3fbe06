"""Keeping the reservations of jobs in hand: a worker's leases.

A job's reservation (``reserved_until``) is its deadline and the promise to
other workers that it is being looked after. The supervisor renews it when
the job asks (touch, checkpoint), when a job starts later than it was
claimed (it waited in a child's batch), and for jobs still waiting once half
their ttr is gone.

A renewal the database cannot take because it is away is kept, as long as
the reservation it would extend still has time: the job goes on (it is told
the deadline the row still holds), and the kept write, the latest checkpoint
with it, is made once the database is back, before any outcome (see
``Supervisor.record_outcomes``). Only a claim the row says is no longer this
worker's is lost; a reservation that runs out meanwhile ends the job like
any job past its deadline.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from .. import queue
from ..exceptions import ClaimLost, JobDoesNotExist, JobError
from ..models import Job
from .outage import DatabaseHealth, first_line, transient
from .outcomes import log_job


@dataclass(frozen=True, slots=True)
class Refused:
    """Why a renewal was not made: ``reason`` is what the job is told (its
    child raises NotRecorded with it), or ``lost`` (ClaimLost)."""

    reason: str
    lost: bool = False


#: What ``renew`` returns when the claim is gone.
LOST = Refused("lost", lost=True)
UNAVAILABLE = Refused("the database is unavailable")
RAN_OUT = Refused("the database is unavailable, and the job's reservation has run out")


@dataclass(slots=True)
class Renewal:
    """A renewal to write: the reservation asked for, and what goes with it."""

    job: Job
    until: datetime
    values: dict[str, Any] = field(default_factory=dict)


class Leases:
    def __init__(self, db: str, health: DatabaseHealth) -> None:
        self.db = db
        self.health = health
        #: When the first job waiting in a child's portion needs renewing.
        self.next_renewal: datetime | None = None
        #: Renewals the database could not take yet, by job id (one per job:
        #: the latest reservation asked, and every value asked with them).
        self.kept: dict[int, Renewal] = {}
        #: Told of a reservation that moved (the job's deadline moves with it),
        #: and of a claim found lost when a kept renewal was written (the job
        #: was told it went on: it is stopped).
        self.on_moved: Callable[[Job], None] = lambda job: None
        self.on_lost: Callable[[Job], None] = lambda job: None

    @staticmethod
    def left(job: Job) -> float:
        """Seconds until ``job``'s reservation runs out."""
        return (job.reserved_until - timezone.now()).total_seconds()

    @property
    def pending(self) -> bool:
        """Whether renewals wait for the database."""
        return bool(self.kept)

    def renew(
        self,
        job: Job,
        seconds: float | None = None,
        *,
        values: dict[str, Any] | None = None,
        what: str = "renew its reservation",
    ) -> Refused | None:
        """Extend the reservation to ``seconds`` (default: the ttr) from now,
        writing ``values`` with it. None if done, or kept until the database
        is back; else why not (``LOST`` when the claim is gone)."""
        seconds = queue.lease_seconds(seconds, job.ttr)
        asked = Renewal(job, timezone.now() + timedelta(seconds=seconds), values or {})
        earlier = self.kept.pop(job.pk, None)
        if earlier is not None:
            asked.values = {**earlier.values, **asked.values}
        if self.health.away and not self.health.due(time.monotonic()):
            failure = UNAVAILABLE  # not worth a try yet: answer at once
        else:
            failure = self._write(asked, what)
        if failure is not UNAVAILABLE:
            return failure
        if self.left(job) > 0:
            self.kept[job.pk] = asked
            return None
        if earlier is not None:  # what was kept before stays kept
            self.kept[job.pk] = earlier
        return RAN_OUT

    def checkpoint(self, job: Job, data: Any) -> Refused | None:
        """Save a checkpoint for ``job``; it renews the reservation too."""
        return self.renew(job, values={"checkpoint": data}, what="save a checkpoint")

    def flush(self) -> bool:
        """Write the kept renewals; False if the database is still away."""
        for job_id, kept in list(self.kept.items()):
            if not kept.values and kept.until <= timezone.now():
                del self.kept[job_id]  # the reservation it asked for is over
                continue
            failure = self._write(kept, "write a touch kept while it was away")
            if failure is UNAVAILABLE:
                return False
            del self.kept[job_id]
            if failure is LOST:  # the job was told nothing: its watch tells it
                self.on_lost(kept.job)
        return True

    def _write(self, renewal: Renewal, what: str) -> Refused | None:
        job = renewal.job
        seconds = max(0.0, (renewal.until - timezone.now()).total_seconds())
        try:
            job.reserved_until = queue.touch(
                job.pk,
                token=job.claim_token,
                seconds=seconds,
                values=renewal.values or None,
                using=self.db,
            )
        except (ClaimLost, JobDoesNotExist) as exc:
            log_job(logging.ERROR, job, "could not %s: %s", what, exc)
            return LOST
        except (JobError, DatabaseError) as exc:
            if isinstance(exc, DatabaseError) and transient(exc):
                self.health.failed(exc, what)
                return UNAVAILABLE
            log_job(logging.ERROR, job, "could not %s: %s", what, first_line(exc))
            return Refused(f"the database refused it ({first_line(exc)})")
        self.health.ok()
        if "checkpoint" in renewal.values:
            job.checkpoint = renewal.values["checkpoint"]
        self.on_moved(job)
        return None

    def renew_if_late(self, job: Job) -> None:
        """A job starting with less than 90% of its ttr left gets a full one."""
        if self.left(job) < 0.9 * job.ttr:
            self.renew(job)

    def expect(self, jobs: Iterable[Job]) -> None:
        """``jobs`` were handed to a child: watch their reservations."""
        for job in jobs:
            self._renew_by(job)

    def renew_waiting(self, waiting: Callable[[], Iterable[Job]]) -> None:
        """Jobs waiting behind a slow one keep their reservation.

        Renewed once half their ttr is gone; the jobs are only looked at
        when the first of them is due, not at every turn of the loop.
        """
        now = timezone.now()
        if self.next_renewal is None or now < self.next_renewal:
            return
        self.next_renewal = None
        for job in waiting():
            if (job.reserved_until - now).total_seconds() < job.ttr / 2:
                self.renew(job)
            self._renew_by(job)

    def _renew_by(self, job: Job) -> None:
        due = job.reserved_until - timedelta(seconds=job.ttr / 2)
        if self.next_renewal is None or due < self.next_renewal:
            self.next_renewal = due
