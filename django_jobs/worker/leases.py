"""Keeping the reservations of jobs in hand: a worker's leases.

A job's reservation (``reserved_until``) is its deadline and the promise to
other workers that it is being looked after. The supervisor renews it when
the job asks (touch), when a job starts later than it was claimed (it waited
in a child's batch), and for jobs still waiting once half their ttr is gone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from .. import queue
from ..exceptions import ClaimLost, JobError
from ..models import Job
from .health import DatabaseHealth, first_line, transient
from .outcomes import log_job


class Leases:
    def __init__(self, db: str, health: DatabaseHealth) -> None:
        self.db = db
        self.health = health
        #: When the first job waiting in a child's portion needs renewing.
        self.next_renewal: datetime | None = None

    @staticmethod
    def left(job: Job) -> float:
        """Seconds until ``job``'s reservation runs out."""
        return (job.reserved_until - timezone.now()).total_seconds()

    def renew(
        self,
        job: Job,
        seconds: float | None = None,
        *,
        values: dict[str, Any] | None = None,
        what: str = "renew its reservation",
    ) -> str | None:
        """Extend the reservation to ``seconds`` (default: the ttr) from now,
        writing ``values`` with it. None if done; else why not ("lost" when
        the claim is gone)."""
        try:
            job.reserved_until = queue.touch(
                job.pk,
                token=job.claim_token,
                seconds=seconds or job.ttr,
                values=values,
                using=self.db,
            )
        except ClaimLost as exc:
            log_job(logging.ERROR, job, "could not %s: %s", what, exc)
            return "lost"
        except (JobError, DatabaseError) as exc:
            if isinstance(exc, DatabaseError) and transient(exc):
                self.health.failed(exc, what)
                return "the database is unavailable"
            log_job(logging.ERROR, job, "could not %s: %s", what, exc)
            return f"the database refused it ({first_line(exc)})"
        return None

    def checkpoint(self, job: Job, data: Any) -> str | None:
        """Save a checkpoint for ``job``; it renews the reservation too."""
        failure = self.renew(job, values={"checkpoint": data}, what="save a checkpoint")
        if failure is None:
            job.checkpoint = data
        return failure

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
