"""Writing new jobs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from ..exceptions import NotMigrated, sqlstate
from ..models import Job
from ..scope import After
from ..states import UNFINISHED, State
from . import mysql, sql_insert
from . import sql as statements
from .guard import get_db
from .placement import attach, place

# Enqueue


@dataclass(frozen=True, slots=True)
class Inserted:
    """What ``insert`` did, call by call (in call order)."""

    #: The job of each call: new, or the unique job already waiting; None for
    #: a schedule tick that another worker enqueued first.
    ids: list[int | None]
    #: False where no new row was written for the call.
    created: list[bool]
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
    expires_at: datetime | None = None,
    max_memory: int | None = None,
    max_cpu_seconds: float | None = None,
    unique_keys: Sequence[str] | None = None,
    limit_keys: Sequence[str] | None = None,
    schedule: tuple[int, datetime] | None = None,
    parent: int | None = None,
    batch: int | None = None,
    workflow: int | None = None,
    after: After | None = None,
    step: int | None = None,
    trace_context: dict[str, str] | None = None,
    using: str | None = None,
) -> Inserted:
    """Write one ready job per ``(args, kwargs)`` call, in a single statement.

    The statement joins the caller's transaction if there is one, so the jobs
    commit or roll back with the caller's own writes. Arguments must already
    be plain JSON data (the backend checks them). A call with a unique key
    for which a job is already ready or reserved gets that job instead of a
    new one; ``schedule`` (id, tick) makes the job that schedule's tick, and
    nothing is written if the tick already has its job. ``limit_keys``:
    each call's key for the queue's limits per key. ``parent`` is the
    job that enqueues these (if any), ``batch`` the batch they belong to.
    ``trace_context``: the enqueue's W3C trace context, kept on each job
    (none when empty).

    Workflows (``queue.workflows``): the jobs join ``workflow``, wait for
    the jobs ``after`` names, and, enqueued by the running job ``step`` of a
    workflow, hold the jobs that wait for it; all in one transaction.
    """
    db = get_db(using)
    columns = {
        "task_path": task_path, "queue": queue, "priority": priority,
        "run_at": run_at, "ttr": ttr, "max_attempts": max_attempts,
        "on_failure": on_failure, "backend": backend, "expires_at": expires_at,
        "unique_keys": unique_keys, "schedule": schedule, "parent": parent,
        "batch": batch, "limit_keys": limit_keys,
        "max_memory": max_memory, "max_cpu_seconds": max_cpu_seconds,
        "trace_context": trace_context or None,
    }  # fmt: skip
    if workflow is None and after is None and step is None:
        return _insert(calls, db, columns)
    with transaction.atomic(using=db):
        placed = place(
            backend=backend, workflow=workflow, after=after, step=step,
            count=len(calls), expires_at=expires_at, db=db,
        )  # fmt: skip
        inserted = _insert(calls, db, {**columns, **placed.columns()})
        attach(placed, inserted.ids, inserted.created, db)
    return inserted


def _insert(
    calls: Sequence[tuple[list[Any], dict[str, Any]]], db: str, given: dict[str, Any]
) -> Inserted:
    """Write the jobs; ``given``: their columns, as ``insert`` was given them
    (and, in a workflow, as ``place`` decided)."""
    connection = connections[db]
    now = timezone.now()
    run_at = given["run_at"] or now
    adapt = connection.ops.adapt_datetimefield_value
    schedule, backend = given["schedule"], given["backend"]
    shared = {
        "backend": backend,
        "queue": given["queue"],
        "task_path": given["task_path"],
        "state": given.get("state", State.READY.value),
        "priority": given["priority"],
        "run_at": adapt(run_at),
        "ttr": given["ttr"],
        "max_attempts": given["max_attempts"],
        "on_failure": given["on_failure"],
        "enqueued_at": adapt(now),
        "expires_at": adapt(given["expires_at"]),
        "schedule_id": schedule[0] if schedule else None,
        "scheduled_for": adapt(schedule[1]) if schedule else None,
        "parent_id": given["parent"],
        "batch_id": given["batch"],
        "workflow_id": given.get("workflow_id"),
        "waiting_for": given.get("waiting_for", 0),
        "runs_anyway": given.get("runs_anyway", False),
        "downstream_count": given.get("downstream_count", 0),
        "max_memory": given.get("max_memory"),
        "max_cpu_seconds": given.get("max_cpu_seconds"),
        "trace_context": _json_or_none(given.get("trace_context")),
    }
    unique_keys = given["unique_keys"]
    keys = list(unique_keys) if unique_keys else [""] * len(calls)
    limit_keys = list(given["limit_keys"] or [""] * len(calls))
    ids: list[int | None] = [None] * len(calls)
    created = [False] * len(calls)
    todo = list(range(len(calls)))
    for _ in range(3):  # a unique job may finish while we look for it
        rows = _insert_rows(
            connection, shared, [(*calls[i], keys[i], limit_keys[i]) for i in todo]
        )
        plain = iter(sorted(pk for pk, key in rows if not key))
        by_key = {key: pk for pk, key in rows if key}
        for i in todo:
            ids[i] = by_key.get(keys[i]) if keys[i] else next(plain, None)
            created[i] = ids[i] is not None
        waiting = {keys[i] for i in todo if ids[i] is None and keys[i]}
        if waiting:
            found = dict(
                Job.objects.using(db)
                .filter(
                    backend=backend,
                    unique_key__in=waiting,
                    state__in=UNFINISHED,
                )
                .values_list("unique_key", "pk")
            )
            for i in todo:
                if ids[i] is None and keys[i]:
                    ids[i] = found.get(keys[i])
        todo = [i for i in todo if ids[i] is None and keys[i]]
        if not todo:
            break
    return Inserted(ids=ids, created=created, enqueued_at=now, run_at=run_at)


def _json_or_none(value: dict[str, str] | None) -> str | None:
    return json.dumps(value) if value else None


def _insert_rows(connection, shared: dict[str, Any], calls: list[tuple]) -> list[tuple]:
    try:
        if connection.vendor == "mysql":
            return mysql.insert(connection, shared, calls)
        return statements.fetch_all(
            connection, *sql_insert.insert(connection, shared=shared, calls=calls)
        )
    except DatabaseError as exc:
        if (clear := not_migrated(exc, connection.alias)) is not None:
            raise clear from None  # its message quotes the database's
        raise


def enqueue(
    *, args: Sequence[Any] = (), kwargs: dict[str, Any] | None = None, **fields: Any
) -> Job:
    """Write one job and return its row (a convenience for tools and tests)."""
    inserted = insert([(list(args), dict(kwargs or {}))], **fields)
    return Job.objects.using(get_db(fields.get("using"))).get(pk=inserted.ids[0])


# Before migrate


#: django-jobs' tables start with it.
TABLE_PREFIX = f"{Job._meta.app_label}_"
#: SQLSTATEs of a missing table (undefined_table) or column (undefined_column).
MISSING_CODES = {"42P01", "42703"}
#: MariaDB's and MySQL's error numbers of a missing table or column.
MYSQL_MISSING = {1146, 1054}
#: The table a database misses, or misses a column of, in its own words:
#: SQLite's, then PostgreSQL's (whose SQLSTATE is asked too), then MariaDB's
#: and MySQL's (whose error number is asked too), which may not name the
#: table of a missing column (then the enqueue's own, the statement's only).
MISSING = [
    re.compile(pattern)
    for pattern in (
        r"^no such table: (?P<table>\S+)$",
        r"^no such column: (?P<table>\S+)\.[^.\s]+$",
        r"^table (?P<table>\S+) has no column named ",
        r'^relation "(?P<table>[^"]+)" does not exist',
        r'^column "[^"]+" of relation "(?P<table>[^"]+)" does not exist',
        r"^column (?P<table>\S+)\.[^.\s]+ does not exist",
        r"^Table '(?P<table>[^']+)' doesn't exist",
        r"^Unknown column '(?P<table>[^'.]+)\.[^']+' in ",
        r"^Unknown column '(?P<table>)[^'.]+' in ",
    )
]


def not_migrated(exc: DatabaseError, db: str) -> NotMigrated | None:
    """The clear error to raise instead of ``exc``, if ``exc`` says that a
    table of django-jobs' (or a column of one) is missing; None for any other
    error.

    Only asked once a statement has failed: the statements that work cost
    nothing more. Precise on purpose: a database that is away, a lock that
    timed out, a constraint or another app's missing table are no missing
    migration of ours.
    """
    if isinstance(exc, NotMigrated):
        return exc
    vendor = connections[db].vendor
    said = str(exc).strip().partition("\n")[0]
    if vendor == "mysql":
        if mysql.error_number(exc) not in MYSQL_MISSING:
            return None
        said = exc.args[-1] if exc.args else said
    table = missing_table(said)
    if table == "" and vendor == "mysql":
        table = Job._meta.db_table
    if table is None or not table.startswith(TABLE_PREFIX):
        return None
    if vendor == "postgresql" and sqlstate(exc) not in MISSING_CODES:
        return None
    return NotMigrated(db, said)


def missing_table(said: str) -> str | None:
    """The table named by an error about a missing table or column, if any."""
    for pattern in MISSING:
        if found := pattern.match(said):
            return found["table"].rpartition(".")[2]  # without a schema
    return None
