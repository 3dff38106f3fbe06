"""The only code that changes job state.

Every operation is one guarded write: it names the states it may start from
(``states.TRANSITIONS``) and, for a reserved job, the claim token it was given.
A write that matches no row did not happen; the operation then finds out why
and raises ``JobDoesNotExist``, ``InvalidTransition`` or ``ClaimLost``.

Operations given one job id raise when they are refused. Given several ids,
they apply to those that qualify and return how many did, because a console
acting on a selection must not fail as a whole for one job that moved on.
"""

from __future__ import annotations

import json
import random
import traceback as tb
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections, router
from django.db.models import F, Q
from django.db.models.functions import Greatest
from django.utils import timezone

from . import sql as statements
from . import states
from .exceptions import (
    ClaimLost,
    InvalidTransition,
    JobCancelled,
    JobDoesNotExist,
    class_path,
)
from .expressions import JSONAppend, JSONDropLast
from .models import Job, Queue
from .states import State

JobIds = int | Iterable[int]


def get_db(using: str | None = None) -> str:
    """The database alias for job writes: explicit, or as the routers say."""
    return using or router.db_for_write(Job)


# Enqueue


@dataclass(frozen=True, slots=True)
class Inserted:
    """What ``insert`` wrote: the new ids, in call order, and their timestamps."""

    ids: list[int]
    enqueued_at: datetime
    run_at: datetime


def insert(
    calls: Sequence[tuple[list[Any], dict[str, Any]]],
    *,
    task_path: str,
    queue: str = "default",
    priority: int = 0,
    run_at: datetime | None = None,
    ttr: int = 300,
    max_attempts: int = 3,
    on_failure: str = "bury",
    backend: str = "default",
    using: str | None = None,
) -> Inserted:
    """Write one ready job per ``(args, kwargs)`` call, in a single statement.

    The statement joins the caller's transaction if there is one, so the jobs
    commit or roll back with the caller's own writes. Arguments must already
    be plain JSON data (the backend checks them).
    """
    db = get_db(using)
    connection = connections[db]
    now = timezone.now()
    run_at = run_at or now
    adapt = connection.ops.adapt_datetimefield_value
    params = [
        backend,
        queue,
        task_path,
        State.READY.value,
        priority,
        adapt(run_at),
        ttr,
        max_attempts,
        on_failure,
        adapt(now),
    ]
    many = len(calls) > 1
    if many:
        params.append(json.dumps(calls))
    else:
        params += [json.dumps(calls[0][0]), json.dumps(calls[0][1])]
    rows = statements.fetch_all(
        connection, statements.insert_statement(connection, many=many), params
    )
    ids = sorted(row[0] for row in rows)
    return Inserted(ids=ids, enqueued_at=now, run_at=run_at)


def enqueue(
    *, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, **fields: Any
) -> Job:
    """Write one job and return its row (a convenience for tools and tests)."""
    inserted = insert([(list(args), dict(kwargs or {}))], **fields)
    return Job.objects.using(get_db(fields.get("using"))).get(pk=inserted.ids[0])


# Claim


def claim(
    *,
    worker_id: str,
    queues: Sequence[str] | None = None,
    limit: int = 1,
    backend: str = "default",
    using: str | None = None,
    prepare: bool = False,
) -> list[Job]:
    """Reserve up to ``limit`` due jobs for ``worker_id``, best first.

    One statement: it picks the candidates in claim order (priority, then
    run_at, then id) and marks them reserved. On PostgreSQL the candidates are
    locked with ``FOR UPDATE SKIP LOCKED``, so concurrent workers skip each
    other's rows instead of waiting or double-claiming; SQLite runs one write
    statement at a time, so the same statement is race-free there too.
    """
    if limit < 1:
        return []
    db = get_db(using)
    connection = connections[db]
    sql, params = claim_statement(
        connection, worker_id=worker_id, queues=queues, limit=limit, backend=backend
    )
    rows = statements.fetch_all(connection, sql, params, prepare)
    jobs = statements.jobs_from_rows(connection, rows)
    jobs.sort(key=lambda job: (-job.priority, job.run_at, job.pk))
    return jobs


def claim_statement(
    connection,
    *,
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    backend: str,
) -> tuple[str, list[Any]]:
    """The claim's SQL and parameters (also used to EXPLAIN it in the tests)."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [State.READY.value, backend, now, *(queues or ()), backend, limit]
    params += [uuid.uuid4().hex, worker_id, now, now, now, json.dumps(worker_id)]
    return statements.claim_query(connection, len(queues or ())), params


# Writes by the claim holder


def touch(
    job_id: int, *, token: str, seconds: float, using: str | None = None
) -> datetime:
    """Extend a reservation to ``seconds`` from now; return the new deadline."""
    deadline = timezone.now() + timedelta(seconds=seconds)
    _change(
        "touch", job_id, token=token, using=using, values={"reserved_until": deadline}
    )
    return deadline


def complete(
    job_id: int, *, token: str, return_value: Any = None, using: str | None = None
) -> None:
    """Record a successful attempt: the job is done."""
    lost = complete_many([(job_id, token, return_value)], using=using)
    if lost:
        _refusal("complete", job_id, token, get_db(using))


def complete_many(
    outcomes: Sequence[tuple[int, str, Any]],
    *,
    using: str | None = None,
    prepare: bool = False,
) -> list[int]:
    """Record many successful attempts in one statement.

    Returns the ids whose claim was lost (the rows were left alone): the
    caller must report them, since their work may have been done twice.
    """
    if not outcomes:
        return []
    db = get_db(using)
    connection = connections[db]
    sql = statements.complete_statement(connection, len(outcomes))
    params: list[Any] = []
    for job_id, token, return_value in outcomes:
        params += [job_id, token, json.dumps(return_value)]
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params += [State.DONE.value, now, State.RESERVED.value]
    done = {row[0] for row in statements.fetch_all(connection, sql, params, prepare)}
    return [job_id for job_id, _, _ in outcomes if job_id not in done]


def retry(
    job_id: int,
    *,
    token: str,
    error: dict[str, Any],
    delay: float = 0,
    using: str | None = None,
) -> None:
    """Record a failed attempt and put the job back, due after ``delay`` seconds."""
    _change(
        "retry",
        job_id,
        token=token,
        using=using,
        values={
            "run_at": timezone.now() + timedelta(seconds=delay),
            "errors": JSONAppend("errors", error),
            **_unreserved(),
        },
    )


def release(job_id: int, *, token: str, using: str | None = None) -> None:
    """Give a job back unrun (worker shutdown): the attempt does not count."""
    _change(
        "release",
        job_id,
        token=token,
        using=using,
        values={
            "attempts": F("attempts") - 1,
            "worker_ids": JSONDropLast("worker_ids"),
            "run_at": timezone.now(),
            **_unreserved(),
        },
    )


def fail(
    job: Job,
    error: dict[str, Any],
    *,
    backoff: tuple[float, float] = (10.0, 3600.0),
    using: str | None = None,
) -> str:
    """Record a failed attempt of a claimed job and decide what comes next.

    The job is retried after an exponential, jittered delay while it has
    attempts left; after that it is buried with all its errors, or deleted if
    its task says ``on_failure="delete"``. Returns "retried", "buried" or
    "deleted".
    """
    if job.attempts < job.max_attempts:
        delay = backoff_delay(job.attempts, *backoff)
        retry(job.pk, token=job.claim_token, error=error, delay=delay, using=using)
        return "retried"
    if job.on_failure == "delete":
        delete(job.pk, token=job.claim_token, using=using)
        return "deleted"
    bury(job.pk, token=job.claim_token, error=error, using=using)
    return "buried"


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before the attempt after ``attempt``: doubling, capped, +/-25%."""
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay * random.uniform(0.75, 1.25)


# Writes by people and duties


def bury(
    job_ids: JobIds,
    *,
    token: str | None = None,
    error: dict[str, Any] | None = None,
    using: str | None = None,
) -> int:
    """Set jobs aside for a human; they never run again until kicked."""
    values: dict[str, Any] = {"finished_at": timezone.now(), **_unreserved()}
    if error is not None:
        values["errors"] = JSONAppend("errors", error)
    return _change("bury", job_ids, token=token, using=using, values=values)


def kick(job_ids: JobIds, *, using: str | None = None) -> int:
    """Make buried or delayed jobs ready now, with at least one attempt left."""
    return _change(
        "kick",
        job_ids,
        using=using,
        values={
            "run_at": timezone.now(),
            "finished_at": None,
            "max_attempts": Greatest("max_attempts", F("attempts") + 1),
        },
    )


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
    error = {
        "exception_class_path": class_path(JobCancelled),
        "traceback": "JobCancelled: cancelled before it started\n",
        "attempt": None,
        "worker_id": "",
        "at": timezone.now().isoformat(),
    }
    jobs = Job.objects.using(db).filter(pk__in=ids)
    buried = jobs.filter(state=State.READY).update(
        state=State.BURIED,
        finished_at=timezone.now(),
        errors=JSONAppend("errors", error),
    )
    marked = jobs.filter(state=State.RESERVED, cancel_requested_at=None).update(
        cancel_requested_at=timezone.now()
    )
    if single and not buried + marked:
        _refusal("cancel", job_ids, None, db)
    return buried + marked


def reprioritise(job_ids: JobIds, priority: int, *, using: str | None = None) -> int:
    """Change the priority of jobs that have not started."""
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not -100 <= priority <= 100
    ):
        raise ValueError(
            f"priority must be a whole number from -100 to 100, got {priority!r}."
        )
    return _change("reprioritise", job_ids, using=using, values={"priority": priority})


def pause(name: str, *, backend: str = "default", using: str | None = None) -> None:
    """Stop workers from claiming jobs of queue ``name``; jobs keep arriving."""
    Queue.objects.using(get_db(using)).update_or_create(
        backend=backend,
        name=name,
        defaults={"paused": True, "paused_at": timezone.now()},
    )


def resume(name: str, *, backend: str = "default", using: str | None = None) -> None:
    """Let workers claim from queue ``name`` again."""
    Queue.objects.using(get_db(using)).filter(backend=backend, name=name).update(
        paused=False, paused_at=None
    )


def delete(
    job_ids: JobIds, *, token: str | None = None, using: str | None = None
) -> int:
    """Delete jobs; a reserved job only by its claim holder."""
    return _change("delete", job_ids, token=token, using=using)


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
    from .exceptions import ReservationExpired, WorkerLost

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


# Errors


def error_entry(
    job: Job, exception: type[BaseException] | BaseException, message: str = ""
) -> dict[str, Any]:
    """The error of ``job``'s current attempt, from an exception or its class."""
    cls = exception if isinstance(exception, type) else type(exception)
    if isinstance(exception, BaseException):
        traceback = "".join(tb.format_exception(exception))
    else:
        traceback = f"{cls.__name__}: {message}\n" if message else f"{cls.__name__}\n"
    return attempt_error(job, class_path(cls), traceback)


def attempt_error(
    job: Job, exception_class_path: str, traceback: str
) -> dict[str, Any]:
    """A job error in the shape django.tasks' TaskError needs, plus context."""
    return {
        "exception_class_path": exception_class_path,
        "traceback": traceback,
        "attempt": job.attempts,
        "worker_id": job.reserved_by,
        "at": timezone.now().isoformat(),
    }


# The guard


def _unreserved() -> dict[str, Any]:
    return {"reserved_until": None, "reserved_by": "", "claim_token": ""}


def _change(
    operation: str,
    job_ids: JobIds,
    *,
    token: str | None = None,
    using: str | None = None,
    values: dict[str, Any] | None = None,
) -> int:
    """Apply ``operation`` as one guarded UPDATE (or DELETE).

    The guard is the set of states the operation may start from; a reserved
    job additionally needs its claim token, which only its holder knows.
    """
    db = get_db(using)
    single = isinstance(job_ids, int)
    ids = [job_ids] if single else list(job_ids)
    allowed = states.sources(operation)
    if token is None:
        guard = Q(state__in=allowed - {State.RESERVED})
    else:
        guard = Q(state__in=allowed, claim_token=token)
    rows = Job.objects.using(db).filter(guard, pk__in=ids)
    new_state = states.target(operation)
    if new_state is None:
        changed = rows.delete()[0]
    else:
        changed = rows.update(state=new_state, **(values or {}))
    if single and not changed:
        _refusal(operation, job_ids, token, db)
    return changed


def _refusal(operation: str, job_id: int, token: str | None, db: str):
    """Raise the reason why a guarded write on one job matched nothing."""
    row = Job.objects.using(db).filter(pk=job_id).values("state", "claim_token").first()
    if row is None:
        raise JobDoesNotExist(job_id)
    if token is not None and (
        row["state"] != State.RESERVED or row["claim_token"] != token
    ):
        raise ClaimLost(job_id, operation)
    raise InvalidTransition(job_id, operation, row["state"])
