"""Reserving ready jobs for a worker."""

from __future__ import annotations

import math
import uuid
from collections.abc import Collection, Sequence
from typing import Any

from django.db import connections
from django.db.models import F, Q
from django.utils import timezone

from ..models import Job, Queue
from ..states import State
from . import mysql
from . import sql as statements
from .columns import jobs_from_rows
from .expressions import JSONDropLast
from .guard import change, get_db, unreserved
from .keys import claim_keyed, lock_queue
from .rows import bury_unrunnable, problem

#: Claims in a row that one call may make in place of buried bad rows.
BAD_ROW_ROUNDS = 10


def claim(
    *,
    worker_id: str,
    queues: Sequence[str] | None = None,
    limit: int = 1,
    backend: str = "default",
    using: str | None = None,
    prepare: bool = False,
    limited: Collection[str] | None = None,
    room: bool = False,
    token: str | None = None,
    skip: Collection[str] = (),
) -> list[Job]:
    """Reserve up to ``limit`` due jobs for ``worker_id``, best first.

    A reserved row that cannot be run (see ``queue.rows``) is buried on its
    own and not returned, so a claim may return fewer jobs than it reserved.

    One statement: it picks the candidates in claim order (priority, then
    run_at, then id) and marks them reserved. On PostgreSQL the candidates are
    locked with ``FOR UPDATE SKIP LOCKED``, so concurrent workers skip each
    other's rows instead of waiting or double-claiming; SQLite runs one write
    statement at a time, so the same statement is race-free there too.

    Queues with a concurrency or rate limit (``limited``: their names, or
    None to look them up) are claimed first, each in a short transaction that
    locks its Queue row, counts its running jobs and spends its rate tokens,
    so that no number of workers can exceed the limits together. Claim order
    holds within each queue.

    With ``room``, the worker's row is told how many more jobs it could take
    after this claim (``limit`` less what it got), in the same statement, so
    that new jobs wake workers that can take them (PostgreSQL; see
    ``queue.wake``).

    Queues in ``skip`` are not claimed from when ``queues`` is empty (every
    queue): a worker of ordinary queues leaves the async lane's alone.

    Every job of one call is reserved under one claim ``token`` (a new one
    unless given): a caller that gets an error instead of the jobs, although
    the claim may have been committed, can give them back with
    ``release_claim`` (see there).
    """
    if limit < 1:
        return []
    db = get_db(using)
    token = token or new_claim_token()
    if limited is None:
        limited = limited_queues(backend, using=db)
    if queues:
        limited = [name for name in limited if name in queues]
    else:
        limited = [name for name in limited if name not in skip]
    jobs: list[Job] = []
    for name in sorted(limited):
        if len(jobs) < limit:
            jobs += _claim_limited(
                db, worker_id, name, limit - len(jobs), backend, prepare, token
            )
    if len(jobs) < limit:
        served = [name for name in queues if name not in limited] if queues else None
        if not queues or served:
            jobs += _claim(
                db,
                worker_id,
                served,
                limit - len(jobs),
                backend,
                prepare,
                [*limited, *skip],
                room=room,
                token=token,
            )
    return jobs


def limited_queues(backend: str = "default", *, using: str | None = None) -> list[str]:
    """The names of the queues with a concurrency or rate limit (for the
    whole queue or per key)."""
    return list(
        Queue.objects.using(get_db(using))
        .filter(backend=backend)
        .filter(LIMITED)
        .values_list("name", flat=True)
    )


#: The queues with limits: claimed one at a time, under their row's lock.
LIMITED = (
    Q(max_concurrency__isnull=False)
    | Q(rate_limit__isnull=False)
    | Q(key_concurrency__isnull=False)
    | Q(key_rate_limit__isnull=False)
)


def new_claim_token() -> str:
    """A claim's token: what a holder shows for every write to its jobs."""
    return uuid.uuid4().hex


def release_claim(
    tokens: Collection[str], worker_id: str, *, using: str | None = None
) -> list[int]:
    """Give back, uncounted, the jobs that claims in doubt reserved; their ids.

    A claim is in doubt when its worker got an error although the claim may
    have been committed (the connection broke before the reply came, or the
    server failed over after the commit reached its standby): its jobs are
    reserved for a worker that never got them. They go back to ready as if
    the claim had not happened (the attempt and the worker's id taken back,
    ``run_at`` kept, so they keep their place), where still reserved under
    one of ``tokens`` by ``worker_id``; without this they would wait for the
    rescuer until their ``ttr`` ran out, and count an attempt that never ran.
    """
    db = get_db(using)
    released = []
    for token in tokens:
        ids = list(
            Job.objects.using(db)
            .filter(state=State.RESERVED, claim_token=token, reserved_by=worker_id)
            .values_list("pk", flat=True)
        )
        changed = change(
            "release",
            ids,
            token=token,
            using=db,
            unless_moved=Q(reserved_by=worker_id),
            values={
                "attempts": F("attempts") - 1,
                "worker_ids": JSONDropLast("worker_ids"),
                **unreserved(),
            },
            returning=("id",),
        )
        released += [row["id"] for row in changed.rows]
    return sorted(released)


def _claim(
    db,
    worker_id,
    queues,
    limit,
    backend,
    prepare,
    excluded=(),
    room=False,
    token=None,
) -> list[Job]:
    connection = connections[db]
    jobs: list[Job] = []
    # Claim again in place of the rows buried, so that a claim that met bad
    # rows does not look like an empty queue to its worker.
    for _ in range(BAD_ROW_ROUNDS):
        if connection.vendor == "mysql":  # no UPDATE ... RETURNING
            rows = mysql.claim(
                connection,
                backend=backend,
                now=timezone.now(),
                queues=list(dict.fromkeys(queues or ())),
                excluded=list(excluded) if not queues else [],
                limit=limit - len(jobs),
                token=token or new_claim_token(),
                worker_id=worker_id,
            )
        else:
            sql, params = claim_statement(
                connection,
                worker_id=worker_id,
                queues=queues,
                limit=limit - len(jobs),
                backend=backend,
                excluded=excluded if not queues else (),
                room=room,
                token=token,
            )
            rows = statements.fetch_all(connection, sql, params, prepare)
        buried = 0
        for job in jobs_from_rows(connection, rows):
            if reason := problem(job):
                bury_unrunnable(job, reason, worker_id=worker_id, using=db)
                buried += 1
            else:
                jobs.append(job)
        if not buried or len(jobs) >= limit:
            break
    jobs.sort(key=lambda job: (-job.priority, job.run_at, job.pk))
    return jobs


def _claim_limited(db, worker_id, name, limit, backend, prepare, token) -> list[Job]:
    """Claim from one limited queue within what its limits allow right now.

    On MariaDB and MySQL a deadlock rolls the claim's transaction back: when
    the transaction is the claim's own, it runs again (``mysql``)."""
    connection = connections[db]

    def locked() -> list[Job]:
        return _claim_under_lock(db, worker_id, name, limit, backend, prepare, token)

    return mysql.atomic(connection, locked)


def _claim_under_lock(db, worker_id, name, limit, backend, prepare, token):
    """``_claim_limited``'s work, in its transaction: lock the queue's row,
    count, spend tokens, claim."""
    now = timezone.now()
    settings, turns = lock_queue(db, backend, name, limit)
    if settings is None or settings.paused:
        return []
    allowed = limit
    if settings.max_concurrency is not None:
        running = (
            Job.objects.using(db)
            .filter(backend=backend, queue=name, state=State.RESERVED)
            .count()
        )
        allowed = min(allowed, settings.max_concurrency - running)
    tokens = None
    if settings.rate_limit:
        tokens = refilled_tokens(settings, now)
        allowed = min(allowed, math.floor(tokens))
    if allowed <= 0:
        jobs = []
    elif settings.keyed:
        jobs = claim_keyed(db, worker_id, settings, turns, allowed, prepare, token)
    else:
        jobs = _claim(db, worker_id, [name], allowed, backend, prepare, token=token)
    if tokens is not None:
        Queue.objects.using(db).filter(pk=settings.pk).update(
            rate_tokens=tokens - len(jobs), rate_refilled_at=now
        )
    return jobs


def refilled_tokens(settings: Queue, now) -> float:
    """The rate limit's bucket: ``rate_limit`` tokens a second, one second's worth
    at most, so that at most that many jobs start in any second."""
    capacity = max(1.0, settings.rate_limit)
    if settings.rate_refilled_at is None:
        return capacity
    elapsed = max(0.0, (now - settings.rate_refilled_at).total_seconds())
    return min(capacity, settings.rate_tokens + elapsed * settings.rate_limit)


def claim_statement(
    connection,
    *,
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    backend: str,
    excluded: Collection[str] = (),
    room: bool = False,
    token: str | None = None,
) -> tuple[str, list[Any]]:
    """The claim's SQL and parameters (also used to EXPLAIN it in the tests)."""
    return statements.claim(
        connection,
        backend=backend,
        now=timezone.now(),
        queues=list(queues or ()),
        excluded=list(excluded),
        limit=limit,
        token=token or new_claim_token(),
        worker_id=worker_id,
        room=room,
    )
