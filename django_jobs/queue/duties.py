"""Writes by the maintenance duties every worker runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from ..exceptions import (
    ClaimLost,
    JobExpired,
    ReservationExpired,
    WorkerLost,
)
from ..models import Job, Worker
from ..states import State
from . import history, mysql
from .batches import settle
from .decided import OUTCOME_FIELDS, Decided, decided
from .errors import error_entry, unstarted_error
from .expressions import JSONAppend
from .guard import change, get_db
from .holder import fail
from .rows import bury_unrunnable


def rescue(
    *,
    backend: str = "default",
    silent_before: datetime | None = None,
    expired_before: datetime | None = None,
    backoff: tuple[float, float] = (10.0, 3600.0),
    using: str | None = None,
) -> dict[str, int]:
    """Take back reservations whose lease ran out or whose worker went
    silent (``rescue_jobs``); how many were retried, buried and deleted."""
    return rescue_jobs(
        backend=backend,
        silent_before=silent_before,
        expired_before=expired_before,
        backoff=backoff,
        using=using,
    ).counts()


def rescue_jobs(
    *,
    backend: str = "default",
    silent_before: datetime | None = None,
    expired_before: datetime | None = None,
    backoff: tuple[float, float] = (10.0, 3600.0),
    using: str | None = None,
) -> Decided:
    """Take back reservations whose lease ran out or whose worker went
    silent; each job as written, with what followed and its error.

    A reservation is lost when its deadline is before ``expired_before``
    (default: now), or when its worker has shown no sign of life since
    ``silent_before`` (see ``silent_workers``): then every job it holds was
    claimed before it went silent. Each counts as a failed attempt: the job
    is retried, or buried once its attempts are used up.

    The decision is part of every write: each job is taken back by one
    guarded UPDATE that checks its claim token *and* that it is still lost,
    so a worker that comes back (or renews a lease, or finishes the job) in
    the meantime keeps what it holds.
    """
    db = get_db(using)
    expired_before = expired_before or timezone.now()
    guard = _lost(backend, silent_before, expired_before)
    lost = (
        Job.objects.using(db)
        .filter(guard, state=State.RESERVED, backend=backend)
        .values_list(*_RESCUE_FIELDS)
    )
    rescued = Decided()
    for values in lost:
        read = dict(zip(_RESCUE_FIELDS, values, strict=True))
        job = Job(**read)
        try:
            with mysql.passing_over_locked_rows():  # its holder is writing it
                then, error, written = _rescue_one(
                    job, guard, expired_before, backoff, db
                )
        except ClaimLost:
            continue  # finished, renewed or rescued by someone else meanwhile
        rescued.jobs.append(decided({**read, "id": job.pk, **written}, then, error))
    return rescued


#: What the rescuer reads of a lost job: never its arguments or results,
#: which it does not need and which a damaged row may not be able to give.
_RESCUE_FIELDS = (
    "pk",
    "claim_token",
    "reserved_by",
    "reserved_until",
    "attempts",
    "max_attempts",
    "on_failure",
    "errors",
    # and what its outcome's hooks are told of it (``OUTCOME_FIELDS``)
    "task_path",
    "queue",
    "backend",
    "trace_context",
)


def _lost(backend: str, silent_before: datetime | None, expired_before: datetime) -> Q:
    lost = Q(reserved_until__lt=expired_before)
    if silent_before is not None:
        holder = silent_workers(backend, silent_before).filter(
            pk=OuterRef("reserved_by")
        )
        lost |= Q(Exists(holder))
    return lost


def silent_workers(backend: str, silent_before: datetime) -> QuerySet[Worker]:
    """Workers with no sign of life since ``silent_before``.

    A heartbeat is one; so is a claim: a worker that came back from a stall
    may claim before its next heartbeat gets through (its database was
    away), and it is alive then. Only workers with neither are silent.
    """
    claimed_since = Job.objects.filter(
        state=State.RESERVED,
        reserved_by=OuterRef("pk"),
        last_attempted_at__gte=silent_before,
    )
    return Worker.objects.filter(
        backend=backend, last_heartbeat__lt=silent_before
    ).exclude(Exists(claimed_since))


def forget_silent_workers(
    backend: str, silent_before: datetime, using: str | None = None
) -> int:
    """Delete the rows of the workers still silent (``silent_workers``);
    how many rows went (with what goes with them).

    On MariaDB and MySQL the workers are read first (a consistent read), then
    deleted by primary key if their heartbeat is still old: a DELETE whose
    subquery reads the jobs takes shared locks on them there, and would wait
    for any worker holding one of its jobs in a transaction (a paused
    completion), stalling the leader's supervisor. A worker that claimed in
    between loses its row and registers again (``worker.fleet``).
    """
    db = get_db(using)
    silent = silent_workers(backend, silent_before).using(db)
    if connections[db].vendor != "mysql":
        return silent.delete()[0]
    ids = list(silent.values_list("pk", flat=True))
    if not ids:
        return 0
    still = Worker.objects.using(db).filter(pk__in=ids)
    return still.filter(last_heartbeat__lt=silent_before).delete()[0]


def _rescue_one(
    job: Job, guard: Q, expired_before: datetime, backoff: tuple[float, float], db: str
) -> tuple[str, dict[str, Any] | None, dict[str, Any]]:
    """Take ``job`` back: what followed, its error, and what was written."""
    if not all(isinstance(getattr(job, n), int) for n in ("attempts", "max_attempts")):
        reason = "attempts or max_attempts is not a whole number"
        bury_unrunnable(
            job, reason, worker_id=job.reserved_by, using=db, unless_moved=guard
        )
        return "buried", None, {}
    if job.reserved_until is None or job.reserved_until < expired_before:
        until = f" at {job.reserved_until.isoformat()}" if job.reserved_until else ""
        exc = ReservationExpired
        message = f"reservation by worker {job.reserved_by} expired{until}"
    else:
        exc, message = WorkerLost, f"worker {job.reserved_by} stopped responding"
    error = error_entry(job, exc, message)
    failed = fail(job, error, backoff=backoff, using=db, unless_moved=guard)
    return failed.then.value, error, failed.written


def expire(*, backend: str = "default", using: str | None = None) -> int:
    """Bury (or delete) the waiting and ready jobs whose deadline passed:
    never started. How many (``expire_jobs`` says which)."""
    return expire_jobs(backend=backend, using=using).count


@dataclass(frozen=True, slots=True)
class Expired:
    """What ``expire_jobs`` wrote: how many, and each job as it was written
    (``decided.decided``: then "expired", and ``deleted``), for the worker's
    on_outcome hooks."""

    count: int
    jobs: list[dict[str, Any]] = field(default_factory=list)
    #: The error entry each was given (the deleted ones too, had they stayed).
    error: dict[str, Any] | None = None


def expire_jobs(*, backend: str = "default", using: str | None = None) -> Expired:
    """Bury (or delete) the waiting and ready jobs whose deadline passed:
    never started; each one's row as written (as read, for a deleted one).

    The claim already skips them; this clears them out of the way, so they
    stop costing the claim a look and show as buried (or are gone, when
    their task says ``on_failure="delete"``).
    """
    db = get_db(using)
    now = timezone.now()
    unstarted = (State.WAITING, State.READY)
    late = Job.objects.using(db).filter(
        state__in=unstarted, backend=backend, expires_at__lte=now
    )
    doomed = list(late.filter(on_failure="delete").values(*OUTCOME_FIELDS))
    kept = list(late.exclude(on_failure="delete").values_list("pk", flat=True))
    error = unstarted_error(JobExpired, "not started before its deadline", now)
    values = {"finished_at": now, "errors": JSONAppend("errors", error)}
    # Still ready and still past its deadline when written (a kick clears it).
    late_now = Q(state__in=unstarted, expires_at__lte=now)
    ids = [row["id"] for row in doomed]
    deleted = change("delete", ids, using=db, unless_moved=late_now)
    buried = change(
        "expire",
        kept,
        using=db,
        values=values,
        unless_moved=late_now,
        returning=OUTCOME_FIELDS,
    )
    settle(deleted.batches | buried.batches, using=db)
    if deleted.count < len(doomed):  # some moved meanwhile (kicked, say)
        left = set(Job.objects.using(db).filter(pk__in=ids).values_list("pk"))
        doomed = [row for row in doomed if (row["id"],) not in left]
    jobs = [
        {**decided(row, "expired", error), "deleted": gone}
        for rows, gone in ((doomed, True), (buried.rows, False))
        for row in rows
    ]
    return Expired(deleted.count + buried.count, jobs, error)


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
    hot_only: bool = False,
    using: str | None = None,
) -> dict[str, int]:
    """Delete finished jobs older than their retention, a batch at a time.

    Each batch is its own short statement (ids first, then a delete by id),
    so that pruning millions of rows never holds locks for long. ``None``
    keeps that state forever. Returns how many were (or, dry, would be)
    deleted per state. With ``hot_only``, done jobs are looked for in the
    hot table only: the history's are dropped a day at a time (see
    ``queue.history``).
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
        if hot_only and state == State.DONE and history.available(db):
            old = old.filter(pk__in=history.in_hot_table(old))
        if dry_run:
            counts[state.value] = old.count()
            continue
        while ids := list(old.values_list("pk", flat=True)[:batch_size]):
            # Per model: deleting a job deletes its workflow edges too.
            deleted = Job.objects.using(db).filter(pk__in=ids).only("pk").delete()[1]
            counts[state.value] += deleted.get(Job._meta.label, 0)
    return counts
