"""The INSERT of an enqueue: one statement for one job or for many.

Built with its parameters by name (see ``named.py``); ``sql.py`` holds the
other hot statements and gives this one under its name too.
"""

from __future__ import annotations

import json
from typing import Any

from ..models import Job
from ..vendors import require_supported
from .named import Statement

#: The columns an enqueue writes: shared by every job of one enqueue, then
#: per call, then constants.
INSERT_SHARED = (
    "backend", "queue", "task_path", "state", "priority", "run_at", "ttr",
    "max_attempts", "on_failure", "enqueued_at", "expires_at", "schedule_id",
    "scheduled_for", "parent_id", "batch_id", "workflow_id", "waiting_for",
    "runs_anyway", "downstream_count", "max_memory", "max_cpu_seconds",
    "trace_context",
)  # fmt: skip
#: Shared columns that are JSON (their parameter is its text).
JSON_SHARED = ("trace_context",)
INSERT_PER_CALL = ("args", "kwargs", "unique_key", "limit_key")
INSERT_CONSTANT = {
    "attempts": "0",
    "reserved_by": "''",
    "claim_token": "''",
    "worker_ids": "'[]'",
    "errors": "'[]'",
}
_inserts: dict[tuple[str, bool], Statement] = {}


def insert(
    connection, *, shared: dict[str, Any], calls: list[tuple[Any, Any, str, str]]
) -> tuple[str, list[Any]]:
    """The INSERT of an enqueue's jobs, and its parameters.

    ``shared``: the value of each column of ``INSERT_SHARED`` (by name), the
    same for every job; ``calls``: each job's
    ``(args, kwargs, unique_key, limit_key)``.
    Many jobs take one statement whatever their number: the calls travel as
    one JSON parameter. A single job takes a plain INSERT ... VALUES, which
    the database plans and runs faster. A row that would break a unique
    constraint (a unique job already waiting, a schedule tick already
    enqueued) is skipped, not an error; the statement returns the id and
    unique key of the rows it wrote.
    """
    many = len(calls) > 1
    key = (connection.vendor, many)
    statement = _inserts.get(key)
    if statement is None:
        statement = _inserts[key] = Statement.named(_insert_sql(connection, many))
    if many:
        return statement.bind(**shared, calls=json.dumps(calls))
    args, kwargs, unique_key, limit_key = calls[0]
    return statement.bind(
        **shared,
        args=json.dumps(args),
        kwargs=json.dumps(kwargs),
        unique_key=unique_key,
        limit_key=limit_key,
    )


def _insert_sql(connection, many: bool) -> str:
    require_supported(connection.vendor)
    qn = connection.ops.quote_name
    postgres = connection.vendor == "postgresql"
    columns = ", ".join(
        qn(name) for name in (*INSERT_SHARED, *INSERT_PER_CALL, *INSERT_CONSTANT)
    )
    shared = ", ".join(
        f"%({name})s::jsonb" if postgres and name in JSON_SHARED else f"%({name})s"
        for name in INSERT_SHARED
    )
    constants = ", ".join(INSERT_CONSTANT.values())
    if not many:
        jsonb = "::jsonb" if postgres else ""
        body = (
            f"VALUES ({shared}, %(args)s{jsonb}, %(kwargs)s{jsonb}, %(unique_key)s,"
            " %(limit_key)s,"
            f" {constants})"
        )
    elif postgres:
        body = (
            f"SELECT {shared}, (call -> 0)::jsonb, (call -> 1)::jsonb,"
            f" call ->> 2, call ->> 3, {constants}"
            " FROM json_array_elements(%(calls)s::json) WITH ORDINALITY"
            " AS calls(call, n) ORDER BY n"
        )
    elif connection.vendor == "mysql":
        body = (
            f"SELECT {shared}, calls.args, calls.kwargs, calls.unique_key,"
            f" calls.limit_key, {constants} FROM JSON_TABLE(%(calls)s, '$[*]'"
            " COLUMNS (n FOR ORDINALITY, args JSON PATH '$[0]',"
            " kwargs JSON PATH '$[1]', unique_key VARCHAR(255) PATH '$[2]',"
            " limit_key VARCHAR(255) PATH '$[3]')) AS calls ORDER BY calls.n"
        )
    else:
        body = (
            f"SELECT {shared}, json_extract(value, '$[0]'),"
            f" json_extract(value, '$[1]'), json_extract(value, '$[2]'),"
            f" json_extract(value, '$[3]'), {constants}"
            " FROM json_each(%(calls)s) WHERE true ORDER BY key"
        )
    if connection.vendor == "mysql":  # what it wrote: see queue.mysql.insert
        return f"INSERT INTO {qn(Job._meta.db_table)} ({columns}) {body}"
    return (
        f"INSERT INTO {qn(Job._meta.db_table)} ({columns}) {body}"
        f" ON CONFLICT DO NOTHING RETURNING {qn('id')}, {qn('unique_key')}"
    )
