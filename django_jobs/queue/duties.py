"""Writes by the maintenance duties every worker runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from ..exceptions import (
    ClaimLost,
    ReservationExpired,
    WorkerLost,
)
from ..models import Job
from ..states import State
from .errors import error_entry
from .guard import get_db
from .holder import fail


def rescue(
    *,
    backend: str = "default",
    stale_workers: Sequence[str] = (),
    expired_before: datetime | None = None,
    backoff: tuple[float, float] = (10.0, 3600.0),
    using: str | None = None,
) -> dict[str, int]:
    """Take back reservations whose lease ran out or whose worker is gone.

    A reservation is lost when its deadline is before ``expired_before``
    (default: now) or its worker is one of ``stale_workers``. Each counts as a
    failed attempt: the job is retried, or buried once its attempts are used
    up. The rescuer acts with the claim token it read, so if the original
    worker finishes at the same moment exactly one of the two writes wins.
    """
    db = get_db(using)
    lost = Q(reserved_until__lt=expired_before or timezone.now())
    if stale_workers:
        lost |= Q(reserved_by__in=list(stale_workers))
    counts = {"retried": 0, "buried": 0, "deleted": 0}
    for job in Job.objects.using(db).filter(
        lost, state=State.RESERVED, backend=backend
    ):
        if job.reserved_by in stale_workers:
            exc, message = WorkerLost, f"worker {job.reserved_by} stopped responding"
        else:
            exc, message = (
                ReservationExpired,
                f"reservation by worker {job.reserved_by} expired at "
                f"{job.reserved_until.isoformat()}",
            )
        try:
            outcome = fail(
                job, error_entry(job, exc, message), backoff=backoff, using=db
            )
        except ClaimLost:
            continue  # finished or rescued by someone else meanwhile
        counts[outcome] += 1
    return counts
