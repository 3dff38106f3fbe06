"""The SQL of the keyed claim (``queue.keys``): its picks and its key rows.

On PostgreSQL each step is one statement: the jobs of every key in turn are
picked in claim order through the partial index ``django_jobs_job_key_claim``
(a LATERAL join, one index probe per key), dealt out round by round and
reserved in the same statement; the key rows are then written in one
statement that also finds each key's next ready job (``..._key_next``).
SQLite runs one small statement per key instead: it has no LATERAL join,
and serialises writers anyway.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from .. import states
from ..models import Job, QueueKey
from .named import Statement
from .sql import reserving

_READY = states.only_source("claim").value
_statements: dict[tuple[str, str], Statement] = {}


def _cached(connection, name: str, build) -> Statement:
    key = (connection.vendor, name)
    if key not in _statements:
        _statements[key] = Statement.named(build(connection))
    return _statements[key]


def _due(connection, key: str) -> str:
    """The due, unexpired ready jobs of ``%(queue)s`` whose key is ``key`` (an
    SQL expression; ``''``: the jobs without a key, in the claim index)."""
    qn = connection.ops.quote_name
    keyed = "" if key == "''" else f" AND NOT ({qn('limit_key')} = '')"
    return (
        f"{qn('state')} = '{_READY}'{keyed} AND {qn('queue')} = %(queue)s"
        f" AND {qn('limit_key')} = {key} AND {qn('backend')} = %(backend)s"
        f" AND {qn('run_at')} <= %(now)s"
        f" AND ({qn('expires_at')} IS NULL OR {qn('expires_at')} > %(now)s)"
    )


def _order(connection) -> str:
    qn = connection.ops.quote_name
    return f"{qn('priority')} DESC, {qn('run_at')}, {qn('id')}"


def _dealt(connection) -> str:
    """PostgreSQL: the jobs of each key (``%(keys)s``, in turn order) up to its
    room (``%(rooms)s``), dealt one per key per round, ``%(limit)s`` in all."""
    qn = connection.ops.quote_name
    table = qn(Job._meta.db_table)
    picked = (
        f"SELECT {qn('id')}, {qn('priority')}, {qn('run_at')} FROM {table}"
        f" WHERE {_due(connection, 't.key')} ORDER BY {_order(connection)}"
        " LIMIT t.room FOR UPDATE SKIP LOCKED"
    )
    return (
        f"SELECT j.{qn('id')} FROM (SELECT j.{qn('id')}, t.turn, row_number()"
        f" OVER (PARTITION BY t.turn ORDER BY j.{qn('priority')} DESC,"
        f" j.{qn('run_at')}, j.{qn('id')}) AS round"
        " FROM unnest(%(keys)s::text[], %(rooms)s::integer[]) WITH ORDINALITY"
        f" AS t(key, room, turn) CROSS JOIN LATERAL ({picked}) j) j"
        " ORDER BY j.round, j.turn LIMIT %(limit)s"
    )


def claim_dealt(
    connection, *, keys: Sequence[str], rooms: Sequence[int], **values: Any
) -> tuple[str, list[Any]]:
    """PostgreSQL: reserve the jobs ``_dealt`` picks; every column returned."""
    statement = _cached(connection, "dealt", lambda c: reserving(c, _dealt(c)))
    return statement.bind(keys=list(keys), rooms=list(rooms), **values)


def picks(connection, *, key: str, room: int, **values: Any) -> tuple[str, list]:
    """SQLite: the ids of one key's due jobs (``""``: the jobs without a key),
    in claim order, up to ``room``."""
    name = "unkeyed" if key == "" else "picks"
    qn = connection.ops.quote_name

    def build(c) -> str:
        where = _due(c, "''" if key == "" else "%(key)s")
        return (
            f"SELECT {qn('id')} FROM {qn(Job._meta.db_table)} WHERE {where}"
            f" ORDER BY {_order(c)} LIMIT %(room)s"
            + (" FOR UPDATE SKIP LOCKED" if c.vendor == "postgresql" else "")
        )

    return _cached(connection, name, build).bind(key=key, room=room, **values)


def claim_ids(connection, ids: Sequence[int], **values: Any) -> tuple[str, list]:
    """Reserve the ready jobs ``ids`` (picked by ``picks``)."""
    qn = connection.ops.quote_name

    def build(c) -> str:
        listed = (
            "= ANY(%(ids)s::bigint[])"
            if c.vendor == "postgresql"
            else "IN (SELECT value FROM json_each(%(ids)s))"
        )
        return reserving(
            c,
            f"SELECT {qn('id')} FROM {qn(Job._meta.db_table)} WHERE {qn('id')}"
            f" {listed} AND {qn('state')} = '{_READY}'",
        )

    given = list(ids) if connection.vendor == "postgresql" else json.dumps(list(ids))
    return _cached(connection, "ids", build).bind(ids=given, **values)


#: The columns of a key row that the claim writes, in ``turns``' order.
TURN_FIELDS = ("served_at", "held_until", "parked_until", "window_start")


def write_turns(
    connection,
    *,
    ids: Sequence[int],
    times: Sequence[Sequence[datetime | None]],
    counts: Sequence[int],
    **values: Any,
) -> tuple[str, list[Any]]:
    """PostgreSQL: write the key rows ``ids`` after a claim, in one statement:
    each row's ``TURN_FIELDS`` (``times``, a column each) and window count,
    its next ready job's run_at (looked up here, through the index
    ``django_jobs_job_key_next``, after the claim's own reservations) and
    its turn (``due_at``, the latest of all these; NULL without a next job).
    OFFSET 0 keeps the lookup in its subquery, where it runs once per row.
    """

    def build(c) -> str:
        qn = c.ops.quote_name
        keys, table = qn(QueueKey._meta.db_table), qn(Job._meta.db_table)
        arrays = ", ".join(f"%({name})s::timestamptz[]" for name in TURN_FIELDS)
        nxt = (
            f"SELECT min({qn('run_at')}) FROM {table} WHERE {qn('state')} ="
            f" '{_READY}' AND NOT ({qn('limit_key')} = '') AND {qn('queue')} ="
            f" k.{qn('queue')} AND {qn('limit_key')} = k.{qn('key')}"
            f" AND {qn('backend')} = k.{qn('backend')}"
        )
        later = ", ".join(f"v.{name}" for name in TURN_FIELDS[:3])
        written = ", ".join(f"{qn(name)} = v.{name}" for name in TURN_FIELDS)
        return (
            f"UPDATE {keys} SET {qn('next_at')} = v.next_at, {written},"
            f" {qn('window_count')} = v.window_count, {qn('due_at')} = CASE WHEN"
            f" v.next_at IS NULL THEN NULL ELSE GREATEST(v.next_at, {later}) END"
            f" FROM (SELECT v.*, ({nxt}) AS next_at FROM {keys} k"
            f" JOIN unnest(%(ids)s::bigint[], {arrays}, %(counts)s::integer[])"
            f" AS v(id, {', '.join(TURN_FIELDS)}, window_count)"
            f" ON k.{qn('id')} = v.id OFFSET 0) v WHERE {keys}.{qn('id')} = v.id"
            f" RETURNING {keys}.{qn('id')}"
        )

    columns = dict(zip(TURN_FIELDS, (list(column) for column in times), strict=True))
    return _cached(connection, "turns", build).bind(
        ids=list(ids), counts=list(counts), **columns, **values
    )
