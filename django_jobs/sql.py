"""The SQL of the queue's hot paths: enqueue, claim and completion.

These statements run for every job, so they are written by hand, built once
per database vendor and cached, and their rows are turned into ``Job``
objects without building a queryset. Only ``queue.py`` executes them: this
module builds statements and runs them, it decides nothing.
Supported databases: PostgreSQL and SQLite.
"""

from __future__ import annotations

import functools
from typing import Any

from .expressions import JSONAppend
from .fields import ReadableDateTimeField, Unreadable, readable_time_sql
from .models import Job, Queue
from .states import State


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


_converters: dict[str, list[tuple[int, list, Any]]] = {}


def jobs_from_rows(connection, rows: list[tuple]) -> list[Job]:
    """Job instances from rows of every concrete column, in field order.

    What a queryset does for each row, without building a query each time:
    the claim runs several times a second in every worker.
    """
    alias = connection.alias
    if alias not in _converters:
        table = Job._meta.db_table
        found = []
        for position, field in enumerate(Job._meta.concrete_fields):
            column = field.get_col(table)
            converters = connection.ops.get_db_converters(
                column
            ) + column.get_db_converters(connection)
            if converters:
                found.append((position, converters, column))
        _converters[alias] = found
    converters = _converters[alias]
    names = [field.attname for field in Job._meta.concrete_fields]
    jobs = []
    for row in rows:
        values = list(row)
        for position, functions, column in converters:
            try:
                for function in functions:
                    values[position] = function(values[position], column, connection)
            except Exception as exc:  # one bad value must not cost the others
                values[position] = Unreadable(f"{type(exc).__name__}: {exc}"[:200])
        jobs.append(Job.from_db(connection.alias, names, values))
    return jobs


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
    qn = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"
    if not postgres and connection.vendor != "sqlite":
        raise NotImplementedError(
            f"django_jobs supports PostgreSQL and SQLite, not {connection.vendor}."
        )
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


_claim_sql: dict[tuple[str, int], str] = {}


def claim_query(connection, queue_count: int, excluded_count: int = 0) -> str:
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
    JSON.
    """
    key = (connection.vendor, queue_count, excluded_count)
    if key not in _claim_sql:
        _claim_sql[key] = _build_claim_query(connection, queue_count, excluded_count)
    return _claim_sql[key]


def _build_claim_query(connection, queue_count: int, excluded_count: int) -> str:
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
    if postgres:
        deadline = f"%s::timestamptz + make_interval(secs => {col['ttr']})"
    elif connection.vendor == "sqlite":
        deadline = (
            "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %s,"
            f" '+' || {col['ttr']} || ' seconds')"
        )
    else:
        raise NotImplementedError(
            f"django_jobs supports PostgreSQL and SQLite, not {connection.vendor}."
        )
    append_worker = JSONAppend.templates[connection.vendor].format(
        col["worker_ids"], "%s"
    )
    returning = ", ".join(returned_columns(connection))
    return (
        f"WITH candidates AS {'MATERIALIZED ' if postgres else ''}({select_sql})"
        f" UPDATE {table} SET {col['state']} = '{State.RESERVED.value}',"
        f" {col['attempts']} = {col['attempts']} + 1,"
        f" {col['claim_token']} = %s, {col['reserved_by']} = %s,"
        f" {col['reserved_until']} = {deadline},"
        f" {col['started_at']} = COALESCE({col['started_at']}, %s),"
        f" {col['last_attempted_at']} = %s,"
        f" {col['worker_ids']} = {append_worker}"
        f" WHERE {col['id']} IN (SELECT {col['id']} FROM candidates)"
        f" RETURNING {returning}"
    )


def returned_columns(connection) -> list[str]:
    """Every column of a job, in field order, as a statement should return
    them: timestamps that Python cannot read come back as NULL (see
    ``django_jobs.fields``), so that one bad row cannot fail a whole claim."""
    qn = connection.ops.quote_name
    columns = []
    for field in Job._meta.concrete_fields:
        column = qn(field.column)
        if isinstance(field, ReadableDateTimeField):
            column = readable_time_sql(connection.vendor, column)[0]
        columns.append(column)
    return columns


_complete_sql: dict[tuple[str, int], str] = {}


def complete_statement(connection, count: int) -> str:
    """Mark ``count`` claimed jobs done, each with its token and return value.

    Parameters: (id, token, JSON value) for each job, then the new state,
    the finish time and the state the jobs must still be in. Returns the ids
    it completed, with their batch.
    """
    key = (connection.vendor, count)
    if key in _complete_sql:
        return _complete_sql[key]
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    value = "v.value::jsonb" if connection.vendor == "postgresql" else "v.value"
    rows = ", ".join(["(%s, %s, %s)"] * count)
    sql = (
        f"WITH v(id, token, value) AS (VALUES {rows})"
        f" UPDATE {table} SET {qn('state')} = %s, {qn('finished_at')} = %s,"
        f" {qn('return_value')} = {value}, {qn('reserved_until')} = NULL,"
        f" {qn('reserved_by')} = '', {qn('claim_token')} = ''"
        f" FROM v WHERE {table}.{qn('id')} = v.id"
        f" AND {table}.{qn('claim_token')} = v.token AND {table}.{qn('state')} = %s"
        f" RETURNING {table}.{qn('id')}, {table}.{qn('batch_id')}"
    )
    if count <= 64:  # keep the cache small: batches are usually short
        _complete_sql[key] = sql
    return sql
