"""Writes by the holder of a claim: its worker (or the rescuer acting for it).

What a job hands back (its return value, error, output, progress message) is
stored as it came, except for the characters no database column can hold
(``arguments.storable_text``): the write must not fail for it, on either
database.
"""

from __future__ import annotations

import enum
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import F, Q
from django.utils import timezone

from ..arguments import storable, storable_text
from ..models import Job
from . import mysql
from . import sql as statements
from .batches import settle
from .columns import converted, fields_named
from .console import delete
from .dependencies import count_down, count_down_unseen, still_held
from .expressions import JSONAppend, JSONDropLast
from .guard import change, get_db, refusal, unreserved
from .workflow_rows import settle_workflows

# Writes by the claim holder


def lease_seconds(seconds: float | None, ttr: int) -> float:
    """How long a touch extends a lease: the seconds asked, or the job's ttr."""
    return float(seconds) if seconds else float(ttr)


def touch(
    job_id: int,
    *,
    token: str,
    seconds: float,
    using: str | None = None,
    values: dict[str, Any] | None = None,
) -> datetime:
    """Extend a reservation to ``seconds`` from now (writing ``values`` with
    it); return the new deadline."""
    deadline = timezone.now() + timedelta(seconds=seconds)
    values = {**(values or {}), "reserved_until": deadline}
    change("touch", job_id, token=token, using=using, values=values)
    return deadline


def checkpoint(
    job_id: int, *, token: str, data: Any, seconds: float, using: str | None = None
) -> datetime:
    """Save a running job's progress state (JSON); it also renews the lease.

    The next attempt of the job, after a crash, a timeout or a failure,
    starts from it (``context.last_checkpoint``).
    """
    return touch(
        job_id, token=token, seconds=seconds, using=using, values={"checkpoint": data}
    )


def progress(
    job_id: int,
    *,
    token: str,
    done: float,
    total: float | None = None,
    message: str = "",
    using: str | None = None,
) -> None:
    """Record how far a running job has got, for people to watch."""
    change(
        "annotate",
        job_id,
        token=token,
        using=using,
        values={
            "progress": {
                "done": done,
                "total": total,
                "message": storable_text(message),
                "at": timezone.now().isoformat(),
            }
        },
    )


def save_logs(
    job_id: int,
    *,
    token: str,
    attempt: int,
    text: str,
    truncated: bool = False,
    using: str | None = None,
) -> None:
    """Keep the tail of an attempt's output on the job."""
    entry = {"attempt": attempt, "text": storable_text(text), "truncated": truncated}
    change(
        "annotate",
        job_id,
        token=token,
        using=using,
        values={"logs": JSONAppend("logs", entry)},
    )


def complete(
    job_id: int, *, token: str, return_value: Any = None, using: str | None = None
) -> dict[str, Any]:
    """Record a successful attempt: the job is done. Returns what was written."""
    written = complete_returning([(job_id, token, return_value)], using=using)
    if job_id not in written:
        refusal("complete", job_id, token, get_db(using))
    return written[job_id]


def complete_returning(
    outcomes: Sequence[tuple[int, str, Any] | tuple[int, str, Any, dict | None]],
    *,
    using: str | None = None,
    prepare: bool = False,
) -> dict[int, dict[str, Any]]:
    """Record many successful attempts in one statement; return what was
    written to each job completed, by id. Each outcome is (id, token, return
    value), and may add what the attempt used (``Job.usage``'s entry).

    An id missing lost its claim (its row was left alone): the caller must
    report it, since its work may have been done twice.
    """
    if not outcomes:
        return {}
    db = get_db(using)
    connection = connections[db]
    given = [
        (job_id, token, storable(value), used[0] if used else None)
        for job_id, token, value, *used in outcomes
    ]
    now, cleared = timezone.now(), unreserved()
    if connection.vendor != "mysql":
        sql, params = statements.completion(
            connection, outcomes=given, now=now, cleared=cleared
        )
    if connection.vendor == "postgresql":  # it releases what waited for them
        rows = statements.fetch_all(connection, sql, params, prepare)
        count_down_unseen(rows, db)
        holding = {row[0] for row in rows if row[-1]}
        rows = [row[:-3] for row in rows]  # what the dependencies read
    else:

        def write() -> tuple[list[tuple], set[int]]:
            if connection.vendor == "mysql":  # no UPDATE ... RETURNING
                rows = mysql.complete(
                    connection,
                    outcomes=[
                        (pk, token, json.dumps(value), used and json.dumps(used))
                        for pk, token, value, used in given
                    ],
                    now=now,
                    cleared=cleared,
                    completed=(*statements.COMPLETED_LINKS, *statements.COMPLETED),
                )
            else:
                rows = statements.fetch_all(connection, sql, params, prepare)
            waited_for = [row[0] for row in rows if row[3]]
            count_down(waited_for, db)
            return rows, still_held(waited_for, db)

        rows, holding = mysql.atomic(connection, write)
    fields = fields_named((*statements.COMPLETED_LINKS, *statements.COMPLETED))
    names = [field.attname for field in fields]
    links = len(statements.COMPLETED_LINKS)
    written = {
        values[0]: dict(zip(names[links:], values[links:], strict=True))
        for values in converted(connection, fields, rows)
    }
    if batches := {values[1] for values in rows if values[1] is not None}:
        settle(batches, using=db)
    # A job that others still wait for cannot be its workflow's last: so a
    # fan-in costs no statement per finished job.
    if workflows := {
        row[2] for row in rows if row[2] is not None and row[0] not in holding
    }:
        settle_workflows(workflows, using=db)
    return written


#: What a failed attempt's write changes: what it returns.
WRITTEN = (
    "state",
    "run_at",
    "finished_at",
    "errors",
    "attempts",
    "worker_ids",
    *unreserved(),
)


def retry(
    job_id: int,
    *,
    token: str,
    error: dict[str, Any],
    delay: float = 0,
    usage: dict[str, Any] | None = None,
    using: str | None = None,
    unless_moved: Q | None = None,
) -> dict[str, Any]:
    """Record a failed attempt (and what it used) and put the job back, due
    after ``delay`` seconds. Returns what was written."""
    changed = change(
        "retry",
        job_id,
        token=token,
        using=using,
        unless_moved=unless_moved,
        values={
            "run_at": timezone.now() + timedelta(seconds=delay),
            "errors": JSONAppend("errors", error),
            **used(usage),
            **unreserved(),
        },
        returning=WRITTEN,
    )
    return changed.rows[0]


def release(job_id: int, *, token: str, using: str | None = None) -> None:
    """Give a job back unrun (worker shutdown): the attempt does not count."""
    change(
        "release",
        job_id,
        token=token,
        using=using,
        values={
            "attempts": F("attempts") - 1,
            "worker_ids": JSONDropLast("worker_ids"),
            "run_at": timezone.now(),
            **unreserved(),
        },
    )


def postpone(
    job_id: int,
    *,
    token: str,
    error: dict[str, Any],
    delay: float,
    usage: dict[str, Any] | None = None,
    using: str | None = None,
) -> dict[str, Any]:
    """Give a job back to be tried again after ``delay`` seconds, keeping the
    error but not counting the attempt: it could not start (its task is not
    importable here yet), which says nothing about the job itself. Returns
    what was written."""
    return change(
        "release",
        job_id,
        token=token,
        using=using,
        values={
            "attempts": F("attempts") - 1,
            "worker_ids": JSONDropLast("worker_ids"),
            "run_at": timezone.now() + timedelta(seconds=delay),
            "errors": JSONAppend("errors", error),
            **used(usage),
            **unreserved(),
        },
        returning=WRITTEN,
    ).rows[0]


class Then(enum.StrEnum):
    """What ``fail`` did with a job; the value is the worker's word for it."""

    RETRIED = "retried"
    BURIED = "buried"
    DELETED = "deleted"


@dataclass(frozen=True, slots=True)
class Failed:
    """What ``fail`` did (``then``), with what it wrote to the row
    (``written``; empty when the row was deleted)."""

    then: Then
    written: dict[str, Any]


def fail(
    job: Job,
    error: dict[str, Any],
    *,
    backoff: tuple[float, float] = (10.0, 3600.0),
    usage: dict[str, Any] | None = None,
    using: str | None = None,
    unless_moved: Q | None = None,
) -> Failed:
    """Record a failed attempt of a claimed job and decide what comes next.

    The job is retried after an exponential, jittered delay while it has
    attempts left; after that it is buried with all its errors, or deleted if
    its task says ``on_failure="delete"``. ``unless_moved``: see
    ``guard.change``; ``usage``: what the attempt used (``Job.usage``).
    """
    held = {"token": job.claim_token, "using": using, "unless_moved": unless_moved}
    if job.attempts < job.max_attempts:
        delay = backoff_delay(job.attempts, *backoff)
        retried = retry(job.pk, error=error, delay=delay, usage=usage, **held)
        return Failed(Then.RETRIED, retried)
    if deletes(job):
        delete(job.pk, **held)
        return Failed(Then.DELETED, {})
    return Failed(Then.BURIED, bury_held(job.pk, error=error, usage=usage, **held))


def deletes(job: Job) -> bool:
    """Whether ``fail`` deletes ``job`` rather than retry or bury it: its
    last attempt failed, and its task says ``on_failure="delete"``."""
    return job.attempts >= job.max_attempts and job.on_failure == "delete"


def bury_held(
    job_id: int,
    *,
    token: str,
    error: dict[str, Any],
    usage: dict[str, Any] | None = None,
    using: str | None = None,
    unless_moved: Q | None = None,
) -> dict[str, Any]:
    """Bury a job its holder failed for good (keeping what its attempt
    ``usage``); return what was written."""
    changed = change(
        "bury",
        job_id,
        token=token,
        using=using,
        unless_moved=unless_moved,
        values={
            "finished_at": timezone.now(),
            "errors": JSONAppend("errors", error),
            **used(usage),
            **unreserved(),
        },
        returning=WRITTEN,
    )
    settle(changed.batches, using=get_db(using))
    return changed.rows[0]


def used(usage: dict[str, Any] | None) -> dict[str, Any]:
    """The write that keeps what an attempt used, if known (``Job.usage``)."""
    return {} if usage is None else {"usage": JSONAppend("usage", usage)}


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Delay before the attempt after ``attempt``: doubling, capped, +/-25%."""
    delay = min(cap, base * 2 ** max(attempt - 1, 0))
    return delay * random.uniform(0.75, 1.25)
