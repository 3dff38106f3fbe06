"""Writes by people (the admin, the jobs command) and queue settings."""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from ..compat import InvalidTaskBackend, task_backends
from ..distinct import distinct_values
from ..exceptions import (
    InvalidTransition,
    JobCancelled,
    UnknownQueue,
)
from ..models import Job, Queue, QueueKey
from ..rates import BadRate, parse_rate
from ..validation import priority_problem
from .batches import settle
from .errors import unstarted_error
from .expressions import JSONAppend
from .guard import JobIds, change, get_db, refusal, unreserved

# Writes by people and duties


def bury(
    job_ids: JobIds,
    *,
    token: str | None = None,
    error: dict[str, Any] | None = None,
    using: str | None = None,
    unless_moved: Q | None = None,
) -> int:
    """Set jobs aside for a human; they never run again until kicked."""
    values: dict[str, Any] = {"finished_at": timezone.now(), **unreserved()}
    if error is not None:
        values["errors"] = JSONAppend("errors", error)
    changed = change(
        "bury",
        job_ids,
        token=token,
        using=using,
        values=values,
        unless_moved=unless_moved,
    )
    settle(changed.batches, using=get_db(using))
    return changed.count


def kick(job_ids: JobIds, *, using: str | None = None) -> int:
    """Make buried or delayed jobs ready now, with at least one attempt left.

    A cancel request is cleared: it was for the run that was stopped, and
    left in place it would stop the next run as soon as a worker claimed it.
    A unique job is not kicked while another job with its key is waiting or
    running: that one will do the work (refused for a single id, skipped in
    a list).
    """
    values = {
        "run_at": timezone.now(),
        "finished_at": None,
        "expires_at": None,
        "cancel_requested_at": None,
        "max_attempts": Greatest("max_attempts", F("attempts") + 1),
    }
    db = get_db(using)
    try:
        with transaction.atomic(using=db):
            return change("kick", job_ids, using=db, values=values).count
    except IntegrityError:
        if isinstance(job_ids, int):
            raise InvalidTransition(
                job_ids, "kick", "unique and another job with its key is waiting"
            ) from None
    kicked = 0
    for job_id in job_ids:  # one at a time, skipping those that collide
        with contextlib.suppress(IntegrityError), transaction.atomic(using=db):
            kicked += change("kick", [job_id], using=db, values=values).count
    return kicked


def cancel(job_ids: JobIds, *, using: str | None = None) -> int:
    """Stop jobs for good: waiting ones now, running ones within seconds.

    A ready (or delayed) job is buried at once as cancelled. A reserved job is
    marked: its worker sees the mark within a few seconds, stops the job's
    process and buries it as cancelled (the attempt counts). Returns how many
    jobs were buried or marked.
    """
    db = get_db(using)
    single = isinstance(job_ids, int)
    ids = [job_ids] if single else list(job_ids)
    now = timezone.now()
    error = unstarted_error(JobCancelled, "cancelled before it started", now)
    buried = change(  # a list, so that it does not raise: the mark may apply
        "cancel",
        ids,
        using=db,
        values={"finished_at": now, "errors": JSONAppend("errors", error)},
    )
    settle(buried.batches, using=db)
    marked = change(
        "request_cancel",
        ids,
        using=db,
        values={"cancel_requested_at": now},
        unless_moved=Q(cancel_requested_at=None),  # asked once is enough
    ).count
    buried = buried.count
    if single and not buried + marked:
        refusal("cancel", job_ids, None, db)
    return buried + marked


def reprioritise(job_ids: JobIds, priority: int, *, using: str | None = None) -> int:
    """Change the priority of jobs that have not started."""
    if problem := priority_problem(priority):
        raise ValueError(problem)
    values = {"priority": priority}
    return change("reprioritise", job_ids, using=using, values=values).count


def pause(name: str, *, backend: str = "default", using: str | None = None) -> None:
    """Stop workers from claiming jobs of queue ``name``; jobs keep arriving.

    Raises ``UnknownQueue`` for a name that nothing knows (see ``check_queue``).
    """
    db = get_db(using)
    check_queue(name, backend, db)
    Queue.objects.using(db).update_or_create(
        backend=backend,
        name=name,
        defaults={"paused": True, "paused_at": timezone.now()},
    )


def configure(
    name: str,
    *,
    backend: str = "default",
    max_concurrency: int | None = None,
    rate_limit: float | None = None,
    key_concurrency: int | None = None,
    key_rate_limit: Any = None,
    using: str | None = None,
) -> None:
    """Set (or, with None, lift) queue ``name``'s limits: for the whole queue,
    and per key (``key_rate_limit`` as ``rates.parse_rate`` reads it).

    ValueError, before anything is written, for a limit that cannot hold.
    """
    if key_concurrency is not None and (
        isinstance(key_concurrency, bool)
        or not isinstance(key_concurrency, int)
        or key_concurrency < 1
    ):
        raise ValueError(
            f"key_concurrency must be a positive whole number, got {key_concurrency!r}."
        )
    count, period = (None, None)
    if key_rate_limit is not None:
        try:
            count, period = parse_rate(key_rate_limit)
        except BadRate as exc:
            raise ValueError(f"key_rate_limit: {exc}") from None
    Queue.objects.using(get_db(using)).update_or_create(
        backend=backend,
        name=name,
        defaults={
            "max_concurrency": max_concurrency,
            "rate_limit": rate_limit,
            "key_concurrency": key_concurrency,
            "key_rate_limit": count,
            "key_rate_period": period,
        },
    )
    if key_concurrency is not None or count is not None:
        # The turn of the queue's jobs without a key (see queue.keys).
        now = timezone.now()
        turn = {"next_at": now, "due_at": now}
        QueueKey.objects.using(get_db(using)).get_or_create(
            backend=backend, queue=name, key="", defaults=turn
        )


def resume(name: str, *, backend: str = "default", using: str | None = None) -> None:
    """Let workers claim from queue ``name`` again (``UnknownQueue`` as pause)."""
    db = get_db(using)
    check_queue(name, backend, db)
    Queue.objects.using(db).filter(backend=backend, name=name).update(
        paused=False, paused_at=None
    )


def configured_queues(backend: str) -> set[str]:
    """The queues a backend's settings name: its QUEUES and QUEUE_LIMITS."""
    try:
        configured = task_backends[backend]
    except InvalidTaskBackend:
        return set()
    names = set(getattr(configured, "queues", None) or ())
    with contextlib.suppress(AttributeError, ImproperlyConfigured):
        names |= set(configured.config.QUEUE_LIMITS)
    return names


def check_queue(name: str, backend: str, db: str) -> None:
    """Refuse a queue that is not configured, has no row and holds no job.

    A row (a paused or limited queue) is enough: a queue paused before its
    last jobs were pruned must still be resumable.
    """
    if (
        name in configured_queues(backend)
        or Queue.objects.using(db).filter(backend=backend, name=name).exists()
        or Job.objects.using(db).filter(queue=name, backend=backend).exists()
    ):
        return
    rows = Queue.objects.using(db).filter(backend=backend)
    known = configured_queues(backend) | set(rows.values_list("name", flat=True))
    known |= set(distinct_values("queue", backend=backend, using=db))
    raise UnknownQueue(name, backend, sorted(known))


def delete(
    job_ids: JobIds,
    *,
    token: str | None = None,
    using: str | None = None,
    unless_moved: Q | None = None,
) -> int:
    """Delete jobs; a reserved job only by its claim holder."""
    changed = change(
        "delete", job_ids, token=token, using=using, unless_moved=unless_moved
    )
    settle(changed.batches, using=get_db(using))
    return changed.count
