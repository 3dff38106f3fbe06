"""Keeping the reservations of jobs in hand: a worker's leases.

A job's reservation (``reserved_until``) is its deadline and the promise to
other workers that it is being looked after. The supervisor renews it when
the job asks (touch), when a job starts later than it was claimed (it waited
in a child's batch), and for jobs still waiting once half their ttr is gone.
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.utils import timezone

from .. import queue
from ..exceptions import JobError
from ..models import Job
from .outcomes import log_job


class Leases:
    def __init__(self, db: str) -> None:
        self.db = db

    @staticmethod
    def left(job: Job) -> float:
        """Seconds until ``job``'s reservation runs out."""
        return (job.reserved_until - timezone.now()).total_seconds()

    def renew(self, job: Job, seconds: float | None = None) -> bool:
        """Extend the reservation to ``seconds`` (default: the ttr) from now."""
        try:
            job.reserved_until = queue.touch(
                job.pk,
                token=job.claim_token,
                seconds=seconds or job.ttr,
                using=self.db,
            )
        except (JobError, DatabaseError) as exc:
            log_job(logging.ERROR, job, "could not renew its reservation: %s", exc)
            return False
        return True

    def checkpoint(self, job: Job, data) -> bool:
        """Save a checkpoint for ``job``; it renews the reservation too."""
        try:
            job.reserved_until = queue.checkpoint(
                job.pk, token=job.claim_token, data=data, seconds=job.ttr, using=self.db
            )
        except (JobError, DatabaseError) as exc:
            log_job(logging.ERROR, job, "could not save its checkpoint: %s", exc)
            return False
        job.checkpoint = data
        return True

    def renew_if_late(self, job: Job) -> None:
        """A job starting with less than 90% of its ttr left gets a full one."""
        if self.left(job) < 0.9 * job.ttr:
            self.renew(job)

    def renew_waiting(self, waiting: list[Job]) -> None:
        """Jobs waiting behind a slow one keep their reservation."""
        for job in waiting:
            if self.left(job) < job.ttr / 2:
                self.renew(job)
