"""The SQL of the queue's hot paths: enqueue, claim and completion.

These statements run for every job, so they are written by hand, built once
per database vendor and cached, and their rows are turned into ``Job``
objects without building a queryset (``queue.columns``). Each statement is
built with its parameters, named where it uses them (``queue.named``), and
guards on the states of the state table. Only this package executes them:
this module builds statements and runs them, it decides nothing.
Supported databases: PostgreSQL and SQLite here; MariaDB and MySQL in
``queue.mysql``, which has no UPDATE ... RETURNING.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from django.db.models.sql import UpdateQuery

from .. import states
from ..models import Dependency, Job, Queue, Worker
from ..states import State
from ..vendors import require_supported
from . import mysql
from .columns import converted, fields_named, returning
from .expressions import JSONAppend
from .named import Statement


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


def update_returning(
    rows: QuerySet, values: dict[str, Any], names: Sequence[str]
) -> list[dict[str, Any]]:
    """``rows.update(**values)``, returning the values written to the fields
    ``names`` of each row changed: one ``UPDATE ... RETURNING`` statement on
    PostgreSQL and SQLite, a short transaction on MariaDB and MySQL
    (``queue.mysql``), so that a caller learns what the guarded write did
    instead of repeating it by hand."""
    connection = connections[rows.db]
    fields = fields_named(tuple(names))
    if connection.vendor == "mysql":
        raw = mysql.update_returning(rows, values, names)
    else:
        query = rows.query.chain(UpdateQuery)
        query.add_update_values(values)
        try:
            update_sql, params = query.get_compiler(rows.db).as_sql()
        except EmptyResultSet:  # no row can match (no ids): nothing to write
            return []
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


def hot_table(connection) -> str:
    """The job table as the hot paths name it: on PostgreSQL ``ONLY`` the
    table itself, without the history's day tables that inherit from it
    (``queue.history``), which hold done jobs only and so nothing a claim,
    a completion or a release may touch."""
    table = connection.ops.quote_name(Job._meta.db_table)
    return f"ONLY {table}" if connection.vendor == "postgresql" else table


_claims: dict[tuple[str, int, int, bool, int], Statement] = {}


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
    room: bool = False,
) -> tuple[str, list[Any]]:
    """The claim statement and its parameters (its text built once per
    vendor and number of queues).

    See ``queue.claim``: the candidates (``backend``'s due, unexpired jobs of
    ``queues``, or of any queue but ``excluded``, never of a paused queue),
    in claim order and locked with SKIP LOCKED on PostgreSQL, are reserved
    in the same statement (up to ``limit``, under ``token`` for
    ``worker_id``), which returns every column of the claimed rows.

    The states come from the state table but are written into the SQL, not
    passed as parameters: the generic plan of a prepared statement (which
    PostgreSQL switches to after a few runs, to stop planning every claim)
    can use the partial claim index only if the statement itself says it
    wants ready rows. So is the limit (one statement per limit, which a
    worker's room bounds): with the limit bound, the generic plan expects a
    tenth of the table, costs more than a plan made for one job, and
    PostgreSQL planned every claim anew, which was most of its cost. With
    ``room`` (PostgreSQL), the same statement writes on the worker's row how
    many more jobs it could take (the limit less the jobs claimed), when
    that changed. New jobs wake workers with room (see
    ``queue.wake``).
    """
    room = room and connection.vendor == "postgresql"
    queues = list(dict.fromkeys(queues))  # a queue named twice is one queue
    key = (connection.vendor, len(queues), len(excluded), room, limit)
    statement = _claims.get(key)
    if statement is None:
        text = _claim_sql(connection, len(queues), len(excluded), room, limit)
        statement = _claims[key] = Statement.named(text)
    return statement.bind(
        backend=backend,
        now=connection.ops.adapt_datetimefield_value(now),
        queues=queues,
        excluded=excluded,
        limit=limit,
        token=token,
        worker_id=worker_id,
        worker_json=json.dumps(worker_id),
    )


def _named(name: str, count: int) -> str:
    """The placeholders of a list's ``count`` values."""
    return ", ".join(f"%({name}.{index})s" for index in range(count))


def _claim_sql(
    connection, queue_count: int, excluded_count: int, room: bool, limit: int
) -> str:
    qn = connection.ops.quote_name
    table = hot_table(connection)
    col = {f.name: qn(f.column) for f in Job._meta.concrete_fields}
    queue_filter = ""
    if queue_count:
        queue_filter = f" AND {col['queue']} IN ({_named('queues', queue_count)})"
    queue_filter += queue_filter_excluded(col, excluded_count)
    postgres = connection.vendor == "postgresql"
    paused = (
        f" AND {col['queue']} NOT IN (SELECT {qn('name')} FROM"
        f" {qn(Queue._meta.db_table)} WHERE {qn('backend')} = %(backend)s"
        f" AND {qn('paused')})"
    )
    order = f" ORDER BY {col['priority']} DESC, {col['run_at']}, {col['id']}"
    due = (
        f" WHERE {col['state']} = '{states.only_source('claim').value}'"
        f" AND {col['backend']} = %(backend)s AND {col['run_at']} <= %(now)s"
        f" AND ({col['expires_at']} IS NULL OR {col['expires_at']} > %(now)s)"
    )
    lock = " FOR UPDATE SKIP LOCKED" if postgres else ""
    if postgres and queue_count > 1:
        # Each queue's best jobs on its own index, then the best of those:
        # walking one index of every queue's jobs in claim order, a claim
        # of queue B would step over the whole backlog of a queue A ahead
        # of it (a second per million jobs).
        picked = f"{col['id']}, {col['priority']}, {col['run_at']}"
        others = queue_filter_excluded(col, excluded_count) + paused
        arms = " UNION ALL ".join(
            f"SELECT * FROM (SELECT {picked} FROM {table}{due}"
            f" AND {col['queue']} = %(queues.{n})s{others}{order}"
            f" LIMIT {int(limit)}{lock}) AS queue{n}"
            for n in range(queue_count)
        )
        select_sql = (
            f"SELECT {col['id']} FROM ({arms}) AS best{order} LIMIT {int(limit)}"
        )
    else:
        select_sql = (
            f"SELECT {col['id']} FROM {table}{due}{queue_filter}{paused}{order}"
            f" LIMIT {int(limit)}{lock}"
        )
    return reserving(connection, select_sql, room)


def queue_filter_excluded(col: dict[str, str], count: int) -> str:
    """The claim's condition on the queues a worker leaves to others."""
    if not count:
        return ""
    return f" AND {col['queue']} NOT IN ({_named('excluded', count)})"


def reserving(connection, select_sql: str, room: bool = False) -> str:
    """The claim's UPDATE of the rows ``select_sql`` picks (their ids, locked
    on PostgreSQL): reserved under ``%(token)s`` for ``%(worker_id)s`` at
    ``%(now)s``, every column returned. Also the keyed claim's (see
    ``queue.key_sql``), which picks its rows otherwise."""
    postgres = connection.vendor == "postgresql"
    update_sql = reserve_candidates(connection)
    candidates = (
        f"WITH candidates AS {'MATERIALIZED ' if postgres else ''}({select_sql})"
    )
    if not room:
        return f"{candidates} {update_sql}"
    qn = connection.ops.quote_name
    worker = qn(Worker._meta.db_table)
    return (
        f"{candidates}, claimed AS ({update_sql}),"
        " still AS (SELECT GREATEST(%(limit)s - count(*), 0) AS room FROM claimed),"
        f" seat AS (UPDATE {worker} SET {qn('room')} = still.room FROM still"
        f" WHERE {worker}.{qn('id')} = %(worker_id)s"
        f" AND {worker}.{qn('room')} IS DISTINCT FROM still.room)"
        " SELECT * FROM claimed"
    )


def reserve_candidates(connection) -> str:
    """The UPDATE that reserves the jobs of a ``candidates`` query (see
    ``reserving``), returning every column."""
    require_supported(connection.vendor)
    qn = connection.ops.quote_name
    table = hot_table(connection)
    col = {f.name: qn(f.column) for f in Job._meta.concrete_fields}
    if connection.vendor == "postgresql":
        deadline = f"%(now)s::timestamptz + make_interval(secs => {col['ttr']})"
    else:
        deadline = (
            "strftime('%%Y-%%m-%%d %%H:%%M:%%f', %(now)s,"
            f" '+' || {col['ttr']} || ' seconds')"
        )
    append_worker = JSONAppend.templates[connection.vendor].format(
        col["worker_ids"], "%(worker_json)s"
    )
    returned = returning(connection, Job._meta.concrete_fields)
    return (
        f"UPDATE {table} SET {col['state']} = '{states.target('claim').value}',"
        f" {col['attempts']} = {col['attempts']} + 1,"
        f" {col['claim_token']} = %(token)s, {col['reserved_by']} = %(worker_id)s,"
        f" {col['reserved_until']} = {deadline},"
        f" {col['started_at']} = COALESCE({col['started_at']}, %(now)s),"
        f" {col['last_attempted_at']} = %(now)s,"
        f" {col['worker_ids']} = {append_worker}"
        f" WHERE {col['id']} IN (SELECT {col['id']} FROM candidates)"
        f" RETURNING {returned}"
    )


_completions: dict[tuple[str, int, tuple[str, ...]], Statement] = {}

#: What a completion writes besides the return value, and returns.
COMPLETED = ("state", "finished_at", "reserved_until", "reserved_by", "claim_token")
#: What a completion returns before those: what else the job's end touches.
COMPLETED_LINKS = ("id", "batch", "workflow", "downstream_count")
#: The state a completion guards on, and the one it writes: bound, not
#: written into the SQL, so that the generic plan of the prepared statement
#: finds each job by its primary key, not by scanning the partial index of
#: reserved jobs (which the planner, knowing the state, would take for the
#: smaller one).
_COMPLETING = states.only_source("complete").value, states.target("complete").value


def completion(
    connection,
    *,
    outcomes: Sequence[tuple[int, str, Any, dict[str, Any] | None]],
    now: datetime,
    cleared: dict[str, Any],
) -> tuple[str, list[Any]]:
    """The statement that marks claimed jobs done, and its parameters.

    ``outcomes``: (id, token, return value, usage) for each job, which must
    still be held under that token; the value must be JSON (see
    ``arguments.storable``), the usage what the attempt used (appended to
    ``Job.usage``; None: nothing). ``now`` is the finish time, ``cleared`` the
    reservation's fields with their new values. Returns each completed job's
    ``COMPLETED_LINKS`` and ``COMPLETED`` fields. On PostgreSQL the same
    statement releases the jobs that waited for them (see
    ``queue.dependencies``), and each row ends with the number of edges from
    the job that the statement saw and the ids of the jobs it counted down
    (``dependencies.count_down_unseen``), and whether a job still waits for
    it (then its workflow cannot have ended); on SQLite the caller releases
    them, in its transaction.
    """
    key = (connection.vendor, len(outcomes), tuple(cleared))
    statement = _completions.get(key)
    if statement is None:
        head, tail = _ends(connection, cleared)
        statement = head + Statement.rows("rows", 4, len(outcomes)) + tail
        if len(outcomes) <= 64:  # keep the cache small: portions are usually short
            _completions[key] = statement
    source, target = _COMPLETING
    return statement.bind(
        rows=[
            (
                job_id,
                token,
                json.dumps(value),
                None if used is None else json.dumps(used),
            )
            for job_id, token, value, used in outcomes
        ],
        target=target,
        now=connection.ops.adapt_datetimefield_value(now),
        source=source,
        waiting=State.WAITING.value,
        ready=State.READY.value,
        **cleared,
    )


_completion_ends: dict[tuple[str, tuple[str, ...]], tuple[Statement, Statement]] = {}


def release_sql(connection, counted: str, *, anyway_only: bool = False) -> str:
    """The UPDATE that counts finished upstream jobs off the jobs waiting for
    them (``counted``: a query of ``id`` and ``n``, how many of a waiting
    job's upstream jobs just finished); a job left waiting for none is ready.
    ``anyway_only``: they failed; only jobs that run anyway count them."""
    qn = connection.ops.quote_name
    job = qn(Job._meta.db_table)
    left = f"{job}.{qn('waiting_for')} - counted.n"
    anyway = f" AND {job}.{qn('runs_anyway')}" if anyway_only else ""
    return (
        f"UPDATE {hot_table(connection)} SET {qn('waiting_for')} = CASE WHEN {left} > 0"
        f" THEN {left} ELSE 0 END, {qn('state')} = CASE WHEN {left} > 0"
        f" THEN {job}.{qn('state')} ELSE %(ready)s END"
        f" FROM ({counted}) AS counted WHERE {job}.{qn('id')} = counted.id"
        f" AND {job}.{qn('state')} = %(waiting)s{anyway}"
    )


def _ends(connection, cleared: dict[str, Any]) -> tuple[Statement, Statement]:
    """The completion before its rows and after them, once per vendor."""
    key = (connection.vendor, tuple(cleared))
    if key in _completion_ends:
        return _completion_ends[key]
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    value = "v.value::jsonb" if connection.vendor == "postgresql" else "v.value"
    clear = ", ".join(f"{qn(name)} = %({name})s" for name in cleared)
    fields = fields_named((*COMPLETED_LINKS, *COMPLETED))
    returned = returning(connection, fields, qualified=True)
    usage = qn("usage")
    kept = JSONAppend.templates[connection.vendor].format(f"{table}.{usage}", "v.usage")
    head = "WITH v(id, token, value, usage) AS (VALUES "  # then the rows
    update = (
        f"UPDATE {hot_table(connection)} SET {qn('state')} = %(target)s,"
        f" {qn('finished_at')} = %(now)s,"
        f" {qn('return_value')} = {value},"
        f" {usage} = CASE WHEN v.usage IS NULL THEN {table}.{usage} ELSE {kept} END,"
        f" {clear}"
        f" FROM v WHERE {table}.{qn('id')} = v.id"
        f" AND {table}.{qn('claim_token')} = v.token"
        f" AND {table}.{qn('state')} = %(source)s"
        f" RETURNING {returned}"
    )
    if connection.vendor == "postgresql":  # and release what waited for them
        dep = qn(Dependency._meta.db_table)
        counted = (
            f"SELECT {qn('downstream_id')} AS id, count(*) AS n FROM {dep}"
            f" JOIN done ON {dep}.{qn('upstream_id')} = done.{qn('id')}"
            f" WHERE done.{qn('downstream_count')} > 0"
            f" GROUP BY {qn('downstream_id')}"
        )
        released = release_sql(connection, counted) + f" RETURNING {table}.{qn('id')}"
        seen = (  # only jobs others wait for have edges to look at
            f"CASE WHEN done.{qn('downstream_count')} > 0 THEN (SELECT count(*)"
            f" FROM {dep} WHERE {dep}.{qn('upstream_id')} = done.{qn('id')})"
            " ELSE 0 END"
        )
        holds = (
            f"done.{qn('downstream_count')} > 0 AND EXISTS (SELECT 1 FROM {dep} d"
            f" JOIN {hot_table(connection)} w ON w.{qn('id')} = d.{qn('downstream_id')}"
            f" WHERE d.{qn('upstream_id')} = done.{qn('id')}"
            f" AND w.{qn('state')} = %(waiting)s)"
        )
        tail = (
            f"), done AS ({update}), released AS ({released})"
            f" SELECT done.*, ({seen}), (SELECT json_agg(id) FROM released),"
            f" ({holds}) FROM done"
        )
    else:
        tail = f") {update}"
    ends = Statement.named(head), Statement.named(tail)
    _completion_ends[key] = ends
    return ends
