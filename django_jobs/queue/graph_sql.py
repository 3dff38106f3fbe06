"""The statements of ``queue.dependencies``, built once per database vendor.

Each names its parameters (see ``named.py``); the caller binds them next to
the call. Ids travel as one JSON list parameter, however many there are.

MariaDB and MySQL (vendor ``mysql``) have no UPDATE ... FROM, no UPDATE ...
RETURNING and no WITH before an UPDATE: the count-down and ``wait_again``
are a multi-table ``UPDATE ... JOIN (derived table)``, and ending what
waits for a failed job is three statements (``dependencies.end_downstream``):
the recursive CTE in a SELECT that locks the doomed rows, an UPDATE by id,
and a read back.
"""

from __future__ import annotations

from typing import Any

from ..models import Dependency, Job
from ..states import UNFINISHED
from . import sql as statements
from .expressions import JSONAppend
from .named import Statement

#: The states of a job that has not finished, as the statements compare them.
UNFINISHED_STATES = sorted(state.value for state in UNFINISHED)


_statements: dict[tuple[str, str, bool], Statement] = {}


def statement(connection, name: str, anyway_only: bool) -> Statement:
    """The statement ``name`` for this connection's vendor, built once."""
    key = (connection.vendor, name, anyway_only)
    if key not in _statements:
        builder = {
            "release": _release_sql,
            "end": _end_sql,
            "wait_again": _again_sql,
            "edges": _edges_sql,
            "doomed": _doomed_sql,
            "bury": _bury_sql,
        }
        _statements[key] = Statement.named(builder[name](connection, anyway_only))
    return _statements[key]


def _tables(connection) -> tuple[str, str, Any]:
    qn = connection.ops.quote_name
    return qn(Job._meta.db_table), qn(Dependency._meta.db_table), qn


def _json_ids(connection, name: str) -> str:
    """A subquery of the ids in the JSON list parameter ``name``."""
    if connection.vendor == "postgresql":
        return f"SELECT value::bigint FROM json_array_elements_text(%({name})s::json)"
    if connection.vendor == "mysql":
        return (
            f"SELECT ids.value FROM JSON_TABLE(%({name})s,"
            " '$[*]' COLUMNS (value BIGINT PATH '$')) AS ids"
        )
    return f"SELECT value FROM json_each(%({name})s)"


def _release_sql(connection, anyway_only: bool) -> str:
    job, dep, qn = _tables(connection)
    counted = (
        f"SELECT {qn('downstream_id')} AS id, count(*) AS n FROM {dep}"
        f" WHERE {qn('upstream_id')} IN ({_json_ids(connection, 'ids')})"
        f" AND {qn('downstream_id')} NOT IN ({_json_ids(connection, 'exclude')})"
        f" GROUP BY {qn('downstream_id')}"
    )
    if connection.vendor == "mysql":
        # The state first: MariaDB and MySQL assign left to right, so it
        # reads the count before the count is written.
        # Compared, not subtracted, first: the count is unsigned.
        more = f"{job}.{qn('waiting_for')} > counted.n"
        anyway = f" AND {job}.{qn('runs_anyway')}" if anyway_only else ""
        return (
            f"UPDATE {job} JOIN ({counted}) AS counted"
            f" ON {job}.{qn('id')} = counted.id"
            f" SET {job}.{qn('state')} = CASE WHEN {more}"
            f" THEN {job}.{qn('state')} ELSE %(ready)s END,"
            f" {job}.{qn('waiting_for')} = CASE WHEN {more}"
            f" THEN {job}.{qn('waiting_for')} - counted.n ELSE 0 END"
            f" WHERE {job}.{qn('state')} = %(waiting)s{anyway}"
        )
    return statements.release_sql(connection, counted, anyway_only=anyway_only)


def _doomed(connection) -> str:
    """The recursive CTE ``doomed``: every job that waits, directly or not,
    for the job ``root``, but those that run anyway and what waits only
    through them."""
    job, dep, qn = _tables(connection)
    waits = (
        f" JOIN {job} j ON j.{qn('id')} = d.{qn('downstream_id')}"
        f" WHERE j.{qn('state')} = %(waiting)s AND NOT j.{qn('runs_anyway')}"
    )
    return (
        "WITH RECURSIVE doomed(id) AS ("
        f"SELECT d.{qn('downstream_id')} FROM {dep} d{waits}"
        f" AND d.{qn('upstream_id')} = %(root)s"
        f" UNION SELECT d.{qn('downstream_id')} FROM doomed"
        f" JOIN {dep} d ON d.{qn('upstream_id')} = doomed.id{waits})"
    )


def _bury(connection) -> str:
    job, _, qn = _tables(connection)
    append = JSONAppend.templates[connection.vendor].format(qn("errors"), "%(error)s")
    return (
        f"UPDATE {job} SET {qn('state')} = %(buried)s,"
        f" {qn('finished_at')} = %(now)s, {qn('blocked_by_id')} = %(root)s,"
        f" {qn('errors')} = {append}"
    )


def _end_sql(connection, anyway_only: bool) -> str:
    _, _, qn = _tables(connection)
    return (
        f"{_doomed(connection)} {_bury(connection)}"
        f" WHERE {qn('id')} IN (SELECT id FROM doomed)"
        f" AND {qn('state')} = %(waiting)s"
        f" RETURNING {qn('id')}, {qn('workflow_id')}, {qn('batch_id')}"
    )


def _doomed_sql(connection, anyway_only: bool) -> str:
    """MariaDB's first step of ``end``: the doomed jobs still waiting, read
    without locking (``queue.mysql.lock_matching`` then locks them by id:
    a locking read of the graph would wait for unrelated locked rows)."""
    job, _, qn = _tables(connection)
    return (
        f"{_doomed(connection)} SELECT {qn('id')} FROM {job}"
        f" WHERE {qn('id')} IN (SELECT id FROM doomed)"
        f" AND {qn('state')} = %(waiting)s ORDER BY {qn('id')}"
    )


def _bury_sql(connection, anyway_only: bool) -> str:
    """MariaDB's second step of ``end``: bury the locked jobs, by id."""
    _, _, qn = _tables(connection)
    return f"{_bury(connection)} WHERE {qn('id')} IN ({_json_ids(connection, 'ids')})"


def _again_sql(connection, anyway_only: bool) -> str:
    job, dep, qn = _tables(connection)
    unfinished = ", ".join(f"%(unfinished.{n})s" for n in range(len(UNFINISHED_STATES)))
    # An upstream job that waits again in this same statement counts as
    # unfinished: the statement's subqueries see it as it was (buried).
    again = (
        f"(u.{qn('state')} IN ({unfinished})"
        f" OR u.{qn('id')} IN ({_json_ids(connection, 'ids')}))"
    )
    if connection.vendor == "mysql":
        # MySQL cannot read, in a subquery, the table it updates; a derived
        # table (grouped, so materialized first) it can.
        counted = (
            f"SELECT d.{qn('downstream_id')} AS id, count(*) AS n FROM {dep} d"
            f" JOIN {job} u ON u.{qn('id')} = d.{qn('upstream_id')}"
            f" WHERE d.{qn('downstream_id')} IN ({_json_ids(connection, 'ids')})"
            f" AND {again} GROUP BY d.{qn('downstream_id')}"
        )
        return (
            f"UPDATE {job} LEFT JOIN ({counted}) AS counted"
            f" ON counted.id = {job}.{qn('id')}"
            f" SET {job}.{qn('state')} = %(waiting)s, {job}.{qn('finished_at')} = NULL,"
            f" {job}.{qn('blocked_by_id')} = NULL,"
            f" {job}.{qn('waiting_for')} = COALESCE(counted.n, 0)"
            f" WHERE {job}.{qn('id')} IN ({_json_ids(connection, 'ids')})"
            f" AND {job}.{qn('state')} IN (%(again.0)s, %(again.1)s, %(again.2)s)"
        )
    return (
        f"UPDATE {job} SET {qn('state')} = %(waiting)s, {qn('finished_at')} = NULL,"
        f" {qn('blocked_by_id')} = NULL, {qn('waiting_for')} = ("
        f"SELECT count(*) FROM {dep} d JOIN {job} u"
        f" ON u.{qn('id')} = d.{qn('upstream_id')}"
        f" WHERE d.{qn('downstream_id')} = {job}.{qn('id')}"
        f" AND {again})"
        f" WHERE {qn('id')} IN ({_json_ids(connection, 'ids')})"
        f" AND {qn('state')} IN (%(again.0)s, %(again.1)s, %(again.2)s)"
    )


def _edges_sql(connection, anyway_only: bool) -> str:
    _, dep, qn = _tables(connection)
    columns = ", ".join(
        qn(name) for name in ("upstream_id", "downstream_id", "name", "position")
    )
    if connection.vendor == "postgresql":
        rows = (
            "SELECT (e->>0)::bigint, (e->>1)::bigint, e->>2, (e->>3)::integer"
            " FROM json_array_elements(%(edges)s::json) AS e"
        )
    elif connection.vendor == "mysql":
        rows = (
            "SELECT e.up, e.down, e.name, e.pos FROM JSON_TABLE(%(edges)s, '$[*]'"
            " COLUMNS (up BIGINT PATH '$[0]', down BIGINT PATH '$[1]',"
            " name VARCHAR(100) CHARACTER SET utf8mb4 PATH '$[2]',"
            " pos INT PATH '$[3]')) AS e"
        )
    else:
        rows = (
            "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'),"
            " json_extract(value, '$[2]'), json_extract(value, '$[3]')"
            " FROM json_each(%(edges)s) WHERE true"
        )
    return f"INSERT INTO {dep} ({columns}) {rows}"
