"""Writes by the maintenance duties every worker runs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db.models import Q
from django.utils import timezone

from ..exceptions import (
    ClaimLost,
    JobExpired,
    ReservationExpired,
    WorkerLost,
)
from ..expressions import JSONAppend
from ..models import Job
from ..states import State
from .batches import settle
from .errors import error_entry, unstarted_error
from .guard import batches_of, get_db
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


def expire(*, backend: str = "default", using: str | None = None) -> int:
    """Bury (or delete) the ready jobs whose deadline passed: never started.

    The claim already skips them; this clears them out of the way, so they
    stop costing the claim a look and show as buried (or are gone, when
    their task says ``on_failure="delete"``).
    """
    db = get_db(using)
    now = timezone.now()
    late = Job.objects.using(db).filter(
        state=State.READY, backend=backend, expires_at__lte=now
    )
    batches = batches_of(late)
    deleted = late.filter(on_failure="delete").only("pk").delete()[0]
    error = unstarted_error(JobExpired, "not started before its deadline", now)
    buried = late.update(
        state=State.BURIED, finished_at=now, errors=JSONAppend("errors", error)
    )
    if batches:
        settle(batches, using=db)
    return deleted + buried


def cutoff(now: datetime, retention: float | None) -> datetime | None:
    """The finish time before which a job has outlived ``retention`` seconds
    (``None``: kept forever), for ``prune``."""
    return None if retention is None else now - timedelta(seconds=retention)


def prune(
    *,
    done_before: datetime | None,
    buried_before: datetime | None,
    backend: str | None = None,
    batch_size: int = 1000,
    dry_run: bool = False,
    using: str | None = None,
) -> dict[str, int]:
    """Delete finished jobs older than their retention, a batch at a time.

    Each batch is its own short statement (ids first, then a delete by id),
    so that pruning millions of rows never holds locks for long. ``None``
    keeps that state forever. Returns how many were (or, dry, would be)
    deleted per state.
    """
    db = get_db(using)
    counts = {}
    for state, before in ((State.DONE, done_before), (State.BURIED, buried_before)):
        counts[state.value] = 0
        if before is None:
            continue
        old = Job.objects.using(db).filter(state=state, finished_at__lt=before)
        if backend is not None:
            old = old.filter(backend=backend)
        if dry_run:
            counts[state.value] = old.count()
            continue
        while ids := list(old.values_list("pk", flat=True)[:batch_size]):
            counts[state.value] += (
                Job.objects.using(db).filter(pk__in=ids).only("pk").delete()[0]
            )
    return counts
