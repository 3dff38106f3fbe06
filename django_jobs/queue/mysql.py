"""The hot statements on MariaDB and MySQL, which have no UPDATE ... RETURNING.

PostgreSQL and SQLite reserve, complete or change jobs and read back what
they wrote in one statement. MariaDB and MySQL (Django's vendor ``mysql``)
cannot return rows from an UPDATE (MySQL cannot from any write), nor update
``FROM`` a list of values or in a ``WITH`` clause, so each such write here is
a short transaction of its own: lock the rows the guard picks (``FOR
UPDATE``, with ``SKIP LOCKED`` for a claim), write them by primary key, and
read back what was written. The rows stay locked from the first statement
to the commit, so what the guard saw is what the write changes, and the
guarantees are the same: a job is claimed once, a completion holds only
under its claim token. It costs more round trips (see docs/databases.rst).

A deadlock (MariaDB reports them where PostgreSQL would wait) rolls the
whole transaction back: when the transaction is ours, it is run again
(``retry_deadlocks``); inside a caller's transaction the error is the
caller's, as any database error would be.

The statements keep to what MariaDB 10.6 and MySQL 8.0.1 both have.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from django.db import IntegrityError, OperationalError, transaction

from .. import states
from ..models import Job, Queue
from . import sql_insert
from .columns import fields_named, returning

logger = logging.getLogger("django_jobs.queue")

#: MariaDB's and MySQL's error numbers: a deadlock, and a duplicate key.
DEADLOCK = 1213
DUPLICATE = 1062
#: Runs of a transaction of ours that met a deadlock, at most.
DEADLOCK_TRIES = 8
#: Deadlocks met and retried in this process, for the debug log.
deadlocks_retried = 0


def atomic[T](connection, work: Callable[[], T]) -> T:
    """``work()`` in a transaction, on any database: on MariaDB and MySQL,
    when the transaction is ``work``'s own, run again after a deadlock
    (``retry_deadlocks``); otherwise in ``transaction.atomic`` (a savepoint
    inside the caller's transaction)."""
    if connection.vendor == "mysql" and not connection.in_atomic_block:
        return retry_deadlocks(connection, work)
    with transaction.atomic(using=connection.alias):
        return work()


def error_number(exc: BaseException) -> int | None:
    """The server's error number of a MySQLdb error, or None."""
    cause = exc.__cause__ or exc
    args = getattr(cause, "args", ())
    return args[0] if args and isinstance(args[0], int) else None


def retry_deadlocks[T](
    connection, work: Callable[[], T], *, transaction_of_its_own: bool = True
) -> T:
    """``work()``, run again if it met a deadlock.

    ``work`` runs in a transaction of its own, or, without
    ``transaction_of_its_own``, in autocommit (one statement, which the
    server undid alone). Inside a caller's transaction there is nothing to
    run again (the server rolled the caller's whole transaction back):
    ``work`` runs once, in it, and the error is the caller's.
    """
    global deadlocks_retried
    if connection.in_atomic_block:
        return work()
    for attempt in range(1, DEADLOCK_TRIES + 1):
        try:
            if not transaction_of_its_own:
                return work()
            with transaction.atomic(using=connection.alias):
                return work()
        except OperationalError as exc:
            if error_number(exc) != DEADLOCK or attempt == DEADLOCK_TRIES:
                raise
            deadlocks_retried += 1
            logger.debug(
                "Deadlock on %s, run again (attempt %d; %d retried in this process)",
                connection.alias,
                attempt + 1,
                deadlocks_retried,
            )
            time.sleep(0.001 * attempt)
    raise AssertionError("unreachable")


def _rows(connection, sql: str, params: Sequence[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _in(count: int) -> str:
    return ", ".join(["%s"] * count)


def _table(connection) -> str:
    return connection.ops.quote_name(Job._meta.db_table)


def read_back(connection, ids: Sequence[int], fields) -> list[tuple]:
    """The columns ``fields`` of the jobs ``ids``, in id order, as the hot
    statements return them (``columns.returning``)."""
    qn = connection.ops.quote_name
    return _rows(
        connection,
        f"SELECT {returning(connection, fields)} FROM {_table(connection)}"
        f" WHERE {qn('id')} IN ({_in(len(ids))}) ORDER BY {qn('id')}",
        list(ids),
    )


# Guarded writes of the ORM's querysets (``sql.update_returning``)


def update_returning(rows, values: dict[str, Any], names: Sequence[str]) -> list[list]:
    """Lock the rows of ``rows`` (in id order, so that two writers lock them
    alike), write ``values`` to them, and read back ``names``.

    The rows are locked by primary key (``lock_matching``): a locking read
    that scanned the guard's index would wait on every row another
    transaction holds in its range, matching or not (MariaDB's ``FOR
    UPDATE`` reads no last committed version, as its ``UPDATE`` does), and a
    paused holder of an unrelated job would stall the write."""
    connection = transaction.get_connection(rows.db)
    fields = fields_named(tuple(names))
    # Read before any transaction: a write that finds nothing (a rescue pass
    # of an idle fleet) costs one statement, not an empty transaction's four.
    candidates = _candidates(rows)
    if not candidates:
        return []

    def write() -> list[tuple]:
        ids = lock_matching(rows, candidates)
        if not ids:
            return []
        Job.objects.using(rows.db).filter(pk__in=ids).update(**values)
        return read_back(connection, ids, fields)

    return retry_deadlocks(connection, write)


#: Set while the caller passes over rows another transaction holds instead
#: of waiting for them (``passing_over_locked_rows``).
_skip_locked: ContextVar[bool] = ContextVar("django_jobs_skip_locked", default=False)


@contextlib.contextmanager
def passing_over_locked_rows() -> Iterator[None]:
    """Within: a guarded write skips the rows another transaction holds.

    For the rescuer: on MariaDB each write of a job is a transaction of
    several statements from the client, so a worker paused in one (a
    stopped process, a long GC) holds its job's row for as long as it is
    paused. Waiting for it would stall the leader's single-threaded
    supervisor (its children's touches, its signals); a job passed over is
    looked at again by the next rescue.
    """
    token = _skip_locked.set(True)
    try:
        yield
    finally:
        _skip_locked.reset(token)


def _candidates(rows) -> list[int]:
    return list(rows.order_by("pk").values_list("pk", flat=True))


def lock_matching(rows, candidates: Sequence[int] | None = None) -> list[int]:
    """Lock the jobs of the queryset ``rows`` and return their ids, in id
    order; the caller's transaction holds the locks.

    The candidates are read first without locking (a consistent read waits
    for no one), then locked by primary key with the guard checked again on
    their latest versions: a matching row that another transaction holds is
    waited for, as PostgreSQL's UPDATE waits for it (or passed over, within
    ``passing_over_locked_rows``), but rows the guard does not match are
    never waited on. ``candidates``: that first read, if the caller made it."""
    if candidates is None:
        candidates = _candidates(rows)
    if not candidates:
        return []
    connection = transaction.get_connection(rows.db)
    locking = (
        rows.filter(pk__in=candidates)
        .select_for_update(skip_locked=_skip_locked.get())
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    sql, params = locking.query.get_compiler(using=rows.db).as_sql()
    table = f" FROM {_table(connection)}"
    at = sql.index(table) + len(table)  # the outer query's: only the id is selected
    sql = f"{sql[:at]} FORCE INDEX (PRIMARY){sql[at:]}"
    return [pk for (pk,) in _rows(connection, sql, params)]


# Enqueue


def insert(connection, shared: dict[str, Any], calls: list[tuple]) -> list[tuple]:
    """Write the jobs of an enqueue (see ``sql_insert.insert``); return (id,
    unique key) of each row written.

    A row that breaks a unique index (a unique job already unfinished, a
    schedule's tick already enqueued) is not written, and not an error:
    MariaDB and MySQL undo only the statement that failed, so the caller's
    transaction goes on. Many jobs take one ``INSERT ... SELECT``, whose ids
    are consecutive (InnoDB's ``innodb_autoinc_lock_mode`` 0 or 1, MariaDB's
    default: the statement holds the table's id lock); jobs with unique
    keys, or a server that interleaves ids (mode 2, MySQL 8's default),
    take one statement each.
    """
    step, consecutive = _autoinc(connection)
    if len(calls) > 1 and consecutive and not any(call[2] for call in calls):
        sql, params = sql_insert.insert(connection, shared=shared, calls=calls)
        first = _insert_one(connection, sql, params)
        return [(first + n * step, "") for n in range(len(calls))]
    written = []
    for call in calls:
        sql, params = sql_insert.insert(connection, shared=shared, calls=[call])
        try:
            written.append((_insert_one(connection, sql, params), call[2]))
        except IntegrityError as exc:
            if error_number(exc) != DUPLICATE:
                raise
    return written


def _insert_one(connection, sql: str, params: Sequence[Any]) -> int:
    """Run one INSERT (again if a deadlock undid it); the first id it wrote."""

    def run() -> int:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.lastrowid

    return retry_deadlocks(connection, run, transaction_of_its_own=False)


def _autoinc(connection) -> tuple[int, bool]:
    """The server's step between ids, and whether one statement's ids are
    consecutive: read once per connection."""
    raw = connection.connection
    known = getattr(raw, "_django_jobs_autoinc", None)
    if known is None:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT @@auto_increment_increment, @@innodb_autoinc_lock_mode"
            )
            step, mode = cursor.fetchone()
        known = (int(step), int(mode) < 2)
        with contextlib.suppress(AttributeError):  # a driver's without attributes
            raw._django_jobs_autoinc = known
    return known


# Claim


def claim(
    connection,
    *,
    backend: str,
    now: datetime,
    queues: Sequence[str],
    excluded: Sequence[str],
    limit: int,
    token: str,
    worker_id: str,
) -> list[tuple]:
    """Reserve up to ``limit`` of ``backend``'s due jobs (of ``queues``, or
    of any queue but ``excluded``; never of a paused queue), best first;
    return every column of the rows claimed. See ``sql.claim``."""
    qn = connection.ops.quote_name
    col = {f.name: qn(f.column) for f in Job._meta.concrete_fields}
    at = connection.ops.adapt_datetimefield_value(now)
    where = (
        f" WHERE {col['state']} = '{states.only_source('claim').value}'"
        f" AND {col['backend']} = %s AND {col['run_at']} <= %s"
        f" AND ({col['expires_at']} IS NULL OR {col['expires_at']} > %s)"
    )
    params: list[Any] = [backend, at, at]
    if queues:
        where += f" AND {col['queue']} IN ({_in(len(queues))})"
        params += list(queues)
    if excluded:
        where += f" AND {col['queue']} NOT IN ({_in(len(excluded))})"
        params += list(excluded)
    where += (
        f" AND {col['queue']} NOT IN (SELECT {qn('name')} FROM"
        f" {qn(Queue._meta.db_table)} WHERE {qn('backend')} = %s AND {qn('paused')})"
    )
    params.append(backend)
    pick = (
        f"SELECT {col['id']} FROM {_table(connection)}{where}"
        f" ORDER BY {col['priority']} DESC, {col['run_at']}, {col['id']}"
        f" LIMIT {int(limit)} FOR UPDATE SKIP LOCKED"
    )

    def reserve() -> list[tuple]:
        ids = [pk for (pk,) in _rows(connection, pick, params)]
        if not ids:
            return []
        reserve_ids(connection, ids, now=now, token=token, worker_id=worker_id)
        return read_back(connection, ids, Job._meta.concrete_fields)

    return retry_deadlocks(connection, reserve)


def reserve_ids(
    connection, ids: Sequence[int], *, now: datetime, token: str, worker_id: str
) -> None:
    """Reserve the jobs ``ids``, which the caller has locked and found ready
    (also the keyed claim's write: ``queue.key_sql``)."""
    qn = connection.ops.quote_name
    col = {f.name: qn(f.column) for f in Job._meta.concrete_fields}
    at = connection.ops.adapt_datetimefield_value(now)
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_table(connection)} SET"
            f" {col['state']} = '{states.target('claim').value}',"
            f" {col['attempts']} = {col['attempts']} + 1,"
            f" {col['claim_token']} = %s, {col['reserved_by']} = %s,"
            f" {col['reserved_until']} = %s + INTERVAL {col['ttr']} SECOND,"
            f" {col['started_at']} = COALESCE({col['started_at']}, %s),"
            f" {col['last_attempted_at']} = %s,"
            f" {col['worker_ids']} = {append(col['worker_ids'], '%s')}"
            f" WHERE {col['id']} IN ({_in(len(ids))})",
            [token, worker_id, at, at, at, json.dumps(worker_id), *ids],
        )


def append(column: str, value: str) -> str:
    """The JSON list in ``column`` with the JSON text ``value`` appended."""
    return f"JSON_ARRAY_APPEND({column}, '$', JSON_EXTRACT({value}, '$'))"


# Completion


def complete(
    connection,
    *,
    outcomes: Sequence[tuple[int, str, str, str | None]],
    now: datetime,
    cleared: dict[str, Any],
    completed: Sequence[str],
) -> list[tuple]:
    """Mark done each job of ``outcomes`` (id, token, return value's JSON,
    usage's JSON or None) still held under its token; return the fields
    ``completed`` of those, in id order. The caller's transaction holds it
    with the release of what waited for them (see ``holder``)."""
    qn = connection.ops.quote_name
    table = _table(connection)
    usage = qn("usage")
    clear = ", ".join(f"{qn(name)} = %s" for name in cleared)
    sql = (
        f"UPDATE {table} SET {qn('state')} = %s, {qn('finished_at')} = %s,"
        f" {qn('return_value')} = %s, {usage} = CASE WHEN %s IS NULL THEN {usage}"
        f" ELSE {append(usage, '%s')} END, {clear}"
        f" WHERE {qn('id')} = %s AND {qn('claim_token')} = %s AND {qn('state')} = %s"
    )
    source = states.only_source("complete").value
    target = states.target("complete").value
    at = connection.ops.adapt_datetimefield_value(now)
    done = []
    with connection.cursor() as cursor:
        for job_id, token, value, used in outcomes:
            cursor.execute(
                sql,
                (
                    target,
                    at,
                    value,
                    used,
                    used,
                    *cleared.values(),
                    job_id,
                    token,
                    source,
                ),
            )
            if cursor.rowcount:
                done.append(job_id)
    if not done:
        return []
    return read_back(connection, done, fields_named(tuple(completed)))
