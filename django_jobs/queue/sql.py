"""The SQL of the queue's hot paths: enqueue, claim and completion.

These statements run for every job, so they are written by hand, built once
per database vendor and cached, and their rows are turned into ``Job``
objects without building a queryset. Only this package executes them: this
module builds statements and runs them, it decides nothing.
Supported databases: PostgreSQL and SQLite.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db.models import Field, QuerySet
from django.db.models.sql import UpdateQuery

from ..fields import ReadableDateTimeField, Unreadable, readable_time_sql
from ..models import Job, Queue, Worker
from ..states import State
from ..vendors import require_supported
from .expressions import JSONAppend


def fetch_all(
    connection, sql: str, params: list[Any], prepare: bool = False
) -> list[tuple]:
    """Run one of this module's hot statements and return its rows.

    On PostgreSQL the parameters are bound by the server rather than quoted
    into the SQL by Python, which halves the client's cost of an enqueue.
    With ``prepare`` the statement is also prepared, so that it is parsed and
    planned once per connection: for the worker, which runs the same few
    statements over and over (not for connections behind a pooler in
    transaction mode). The statement runs in the connection's current
    transaction, as any query would, and through Django's cursor wrapper,
    so that ``connection.execute_wrapper()``, ``connection.queries``,
    ``assertNumQueries`` and the tools built on them see it as they see any
    other query.
    """
    if connection.vendor == "postgresql":
        connection.ensure_connection()
        cursor = _server_bound_cursor(prepare)(connection.connection)
        wrap = (
            connection.make_debug_cursor
            if connection.queries_logged
            else connection.make_cursor
        )
        with wrap(cursor) as wrapped:
            wrapped.execute(sql, params)
            return wrapped.fetchall()
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


@functools.cache
def _server_bound_cursor(prepare: bool) -> type:
    """psycopg's plain (server-binding) cursor, preparing every statement if
    ``prepare``: Django's wrapper calls ``execute(sql, params)`` only."""
    import psycopg

    if not prepare:
        return psycopg.Cursor

    class PreparingCursor(psycopg.Cursor):
        def execute(self, query, params=None, **options):
            return super().execute(query, params, **{**options, "prepare": True})

    return PreparingCursor


@functools.cache
def fields_named(names: tuple[str, ...]) -> tuple[Field, ...]:
    """The job's fields of these names: one tuple per list of names, so that
    ``converted`` finds their converters at once."""
    return tuple(Job._meta.get_field(name) for name in names)


def converted(connection, fields: Sequence[Field], rows: list[tuple]) -> list[list]:
    """Rows of ``fields``' columns as Python values, as a queryset would give
    them, without building a query each time (the claim runs several times a
    second in every worker). A value that cannot be converted becomes an
    ``Unreadable``: one bad value must not cost the rest of the rows.
    """
    converters = _converters(connection, fields)
    result = []
    for row in rows:
        values = list(row)
        for position, functions, column in converters:
            try:
                for function in functions:
                    values[position] = function(values[position], column, connection)
            except Exception as exc:
                values[position] = Unreadable(f"{type(exc).__name__}: {exc}"[:200])
        result.append(values)
    return result


_found: dict[tuple[str, int], tuple[Sequence[Field], list[tuple[int, list, Any]]]] = {}


def _converters(connection, fields: Sequence[Field]) -> list[tuple[int, list, Any]]:
    """Each field's converters, looked up once per database alias and list of
    fields (callers pass the same list each time: it is keyed by identity, and
    kept, so that its identity is never reused)."""
    key = (connection.alias, id(fields))
    if key in _found:
        return _found[key][1]
    table = Job._meta.db_table
    found = []
    for position, field in enumerate(fields):
        column = field.get_col(table)
        functions = connection.ops.get_db_converters(column)
        functions += column.get_db_converters(connection)
        if functions:
            found.append((position, functions, column))
    _found[key] = (fields, found)
    return found


def jobs_from_rows(connection, rows: list[tuple]) -> list[Job]:
    """Job instances from rows of every concrete column, in field order."""
    fields = Job._meta.concrete_fields
    names = [field.attname for field in fields]
    return [
        Job.from_db(connection.alias, names, values)
        for values in converted(connection, fields, rows)
    ]


def returning(connection, fields: Sequence[Field], *, qualified: bool = False) -> str:
    """A RETURNING list of ``fields``' columns, as a statement should return
    them: timestamps that Python cannot read come back as NULL (see
    ``django_jobs.fields``), so that one bad row cannot fail a whole claim."""
    qn = connection.ops.quote_name
    prefix = f"{qn(Job._meta.db_table)}." if qualified else ""
    columns = []
    for field in fields:
        column = prefix + qn(field.column)
        if isinstance(field, ReadableDateTimeField):
            column = readable_time_sql(connection.vendor, column)[0]
        columns.append(column)
    return ", ".join(columns)


def update_returning(
    rows: QuerySet, values: dict[str, Any], names: Sequence[str]
) -> list[dict[str, Any]]:
    """``rows.update(**values)``, returning the values written to the fields
    ``names`` of each row changed: one ``UPDATE ... RETURNING`` statement, on
    PostgreSQL and SQLite alike, so that a caller learns what the guarded
    write did instead of repeating it by hand."""
    query = rows.query.chain(UpdateQuery)
    query.add_update_values(values)
    compiler = query.get_compiler(rows.db)
    connection = compiler.connection
    try:
        update_sql, params = compiler.as_sql()
    except EmptyResultSet:  # no row can match (no ids): nothing to write
        return []
    fields = fields_named(tuple(names))
    with connection.cursor() as cursor:
        cursor.execute(
            f"{update_sql} RETURNING {returning(connection, fields)}", params
        )
        raw = cursor.fetchall()
    attnames = [field.attname for field in fields]
    return [
        dict(zip(attnames, row, strict=True))
        for row in converted(connection, fields, raw)
    ]


#: The columns an enqueue writes: shared by every job of one enqueue, then
#: per call, then constants.
INSERT_SHARED = (
    "backend", "queue", "task_path", "state", "priority", "run_at", "ttr",
    "max_attempts", "on_failure", "enqueued_at", "expires_at", "schedule_id",
    "scheduled_for", "parent_id", "batch_id",
)  # fmt: skip
INSERT_PER_CALL = ("args", "kwargs", "unique_key")
INSERT_CONSTANT = {
    "attempts": "0",
    "reserved_by": "''",
    "claim_token": "''",
    "worker_ids": "'[]'",
    "errors": "'[]'",
}
_insert_sql: dict[tuple[str, bool], str] = {}


def insert_statement(connection, *, many: bool) -> str:
    """The INSERT for one job, or for many as a SELECT over a JSON list of calls.

    Many jobs take one statement whatever their number: the calls travel as
    one JSON parameter, each ``[args, kwargs, unique_key]``. A single job
    takes a plain INSERT ... VALUES, which the database plans and runs
    faster. A row that would break a unique constraint (a unique job already
    waiting, a schedule tick already enqueued) is skipped, not an error; the
    statement returns the id and unique key of the rows it wrote.
    """
    key = (connection.vendor, many)
    if key in _insert_sql:
        return _insert_sql[key]
    require_supported(connection.vendor)
    qn = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"
    columns = ", ".join(
        qn(name) for name in (*INSERT_SHARED, *INSERT_PER_CALL, *INSERT_CONSTANT)
    )
    shared = ", ".join(["%s"] * len(INSERT_SHARED))
    constants = ", ".join(INSERT_CONSTANT.values())
    if not many:
        jsonb = "::jsonb" if postgres else ""
        body = f"VALUES ({shared}, %s{jsonb}, %s{jsonb}, %s, {constants})"
    elif postgres:
        body = (
            f"SELECT {shared}, (call -> 0)::jsonb, (call -> 1)::jsonb,"
            f" call ->> 2, {constants}"
            " FROM json_array_elements(%s::json) WITH ORDINALITY AS calls(call, n)"
            " ORDER BY n"
        )
    else:
        body = (
            f"SELECT {shared}, json_extract(value, '$[0]'),"
            f" json_extract(value, '$[1]'), json_extract(value, '$[2]'), {constants}"
            " FROM json_each(%s) WHERE true ORDER BY key"
        )
    _insert_sql[key] = (
        f"INSERT INTO {qn(Job._meta.db_table)} ({columns}) {body}"
        f" ON CONFLICT DO NOTHING RETURNING {qn('id')}, {qn('unique_key')}"
    )
    return _insert_sql[key]


_claim_sql: dict[tuple[str, int, int, bool], str] = {}


def claim_query(
    connection, queue_count: int, excluded_count: int = 0, room: bool = False
) -> str:
    """The claim statement, built once per vendor and number of queues.

    See ``queue.claim``: the candidates, in claim order and locked with SKIP
    LOCKED on PostgreSQL, are reserved in the same statement, which returns
    every column of the claimed rows.

    The state is written into the SQL, not passed as a parameter: the generic
    plan of a prepared statement (which PostgreSQL switches to after a few
    runs, to stop planning every claim) can use the partial claim index only
    if the statement itself says it wants ready rows. Parameters: backend,
    now (due), now (expiry), the queues to claim from, the queues not to, the
    backend (paused queues), the limit, then the new claim's token, worker
    id, now (deadline), now (started), now (attempted) and the worker id as
    JSON. With ``room`` (PostgreSQL), the same statement writes on the
    worker's row how many more jobs it could take (the limit less the jobs
    claimed), when that changed: two more parameters, the limit and the
    worker id. New jobs wake workers with room (see ``queue.wake``).
    """
    room = room and connection.vendor == "postgresql"
    key = (connection.vendor, queue_count, excluded_count, room)
    if key not in _claim_sql:
        _claim_sql[key] = _build_claim_query(
            connection, queue_count, excluded_count, room
        )
    return _claim_sql[key]


def _build_claim_query(
    connection, queue_count: int, excluded_count: int, room: bool
) -> str:
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    col = {f.name: qn(f.column) for f in Job._meta.concrete_fields}
    queue_filter = ""
    if queue_count:
        queue_filter = f" AND {col['queue']} IN ({', '.join(['%s'] * queue_count)})"
    if excluded_count:
        queue_filter += (
            f" AND {col['queue']} NOT IN ({', '.join(['%s'] * excluded_count)})"
        )
    postgres = connection.vendor == "postgresql"
    paused = (
        f" AND {col['queue']} NOT IN (SELECT {qn('name')} FROM"
        f" {qn(Queue._meta.db_table)} WHERE {qn('backend')} = %s AND {qn('paused')})"
    )
    select_sql = (
        f"SELECT {col['id']} FROM {table}"
        f" WHERE {col['state']} = '{State.READY.value}' AND {col['backend']} = %s"
        f" AND {col['run_at']} <= %s"
        f" AND ({col['expires_at']} IS NULL OR {col['expires_at']} > %s)"
        f"{queue_filter}{paused}"
        f" ORDER BY {col['priority']} DESC, {col['run_at']}, {col['id']}"
        " LIMIT %s" + (" FOR UPDATE SKIP LOCKED" if postgres else "")
    )
    require_supported(connection.vendor)
    if postgres:
        deadline = f"%s::timestamptz + make_interval(secs => {col['ttr']})"
    else:
        deadline = (
            "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s,"
            f" '+' || {col['ttr']} || ' seconds')"
        )
    append_worker = JSONAppend.templates[connection.vendor].format(
        col["worker_ids"], "%s"
    )
    returned = returning(connection, Job._meta.concrete_fields)
    update_sql = (
        f"UPDATE {table} SET {col['state']} = '{State.RESERVED.value}',"
        f" {col['attempts']} = {col['attempts']} + 1,"
        f" {col['claim_token']} = %s, {col['reserved_by']} = %s,"
        f" {col['reserved_until']} = {deadline},"
        f" {col['started_at']} = COALESCE({col['started_at']}, %s),"
        f" {col['last_attempted_at']} = %s,"
        f" {col['worker_ids']} = {append_worker}"
        f" WHERE {col['id']} IN (SELECT {col['id']} FROM candidates)"
        f" RETURNING {returned}"
    )
    candidates = (
        f"WITH candidates AS {'MATERIALIZED ' if postgres else ''}({select_sql})"
    )
    if not room:
        return f"{candidates} {update_sql}"
    worker = qn(Worker._meta.db_table)
    return (
        f"{candidates}, claimed AS ({update_sql}),"
        " still AS (SELECT GREATEST(%s - count(*), 0) AS room FROM claimed),"
        f" seat AS (UPDATE {worker} SET {qn('room')} = still.room FROM still"
        f" WHERE {worker}.{qn('id')} = %s"
        f" AND {worker}.{qn('room')} IS DISTINCT FROM still.room)"
        " SELECT * FROM claimed"
    )


_complete_sql: dict[tuple[str, int], str] = {}

#: What a completion writes besides the return value, and returns.
COMPLETED = ("state", "finished_at", "reserved_until", "reserved_by", "claim_token")


def complete_statement(connection, count: int, cleared: dict[str, Any]) -> str:
    """Mark ``count`` claimed jobs done, each with its token and return value.

    Parameters: (id, token, JSON value) for each job, then the new state, the
    finish time, the values of ``cleared`` (the reservation's fields) and the
    state the jobs must still be in. Returns each completed job's id, batch
    and ``COMPLETED`` fields.
    """
    key = (connection.vendor, count)
    if key in _complete_sql:
        return _complete_sql[key]
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    value = "v.value::jsonb" if connection.vendor == "postgresql" else "v.value"
    rows = ", ".join(["(%s, %s, %s)"] * count)
    clear = ", ".join(f"{qn(name)} = %s" for name in cleared)
    fields = fields_named(("id", "batch", *COMPLETED))
    returned = returning(connection, fields, qualified=True)
    sql = (
        f"WITH v(id, token, value) AS (VALUES {rows})"
        f" UPDATE {table} SET {qn('state')} = %s, {qn('finished_at')} = %s,"
        f" {qn('return_value')} = {value}, {clear}"
        f" FROM v WHERE {table}.{qn('id')} = v.id"
        f" AND {table}.{qn('claim_token')} = v.token AND {table}.{qn('state')} = %s"
        f" RETURNING {returned}"
    )
    if count <= 64:  # keep the cache small: portions are usually short
        _complete_sql[key] = sql
    return sql
