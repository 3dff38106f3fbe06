"""The SQL of the keyed claim (``queue.keys``): its picks and its key rows.

On PostgreSQL, once the key rows are locked, the rest of the claim is one
statement (``claim_keys``): one round trip, whatever the number of keys.
SQLite runs one small statement per key instead: it has no LATERAL join,
and serialises writers anyway; PostgreSQL does too while the jobs without a
key have a turn (rarely: see ``queue.keys``). So do MariaDB and MySQL, which
have no data-modifying CTE nor UPDATE ... RETURNING: each key's picks are
locked (``SKIP LOCKED``), then reserved by id and read back
(``queue.mysql``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .. import states
from ..models import Job, Queue, QueueKey
from .named import Statement
from .sql import reserve_candidates, reserving

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


def picks(connection, *, key: str, room: int, **values: Any) -> tuple[str, list]:
    """The ids of one key's due jobs (``""``: the jobs without a key), in
    claim order, up to ``room``; locked, skipping those another transaction
    holds, except on SQLite (which serialises writers)."""
    name = "unkeyed" if key == "" else "picks"
    qn = connection.ops.quote_name

    def build(c) -> str:
        where = _due(c, "''" if key == "" else "%(key)s")
        return (
            f"SELECT {qn('id')} FROM {qn(Job._meta.db_table)} WHERE {where}"
            f" ORDER BY {_order(c)} LIMIT %(room)s"
            + (" FOR UPDATE SKIP LOCKED" if c.vendor != "sqlite" else "")
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


def lock_queue(
    connection, *, backend: str, name: str, now: Any, scan: int
) -> tuple[str, list[Any]]:
    """PostgreSQL: lock a limited queue's row and, if it has limits per key
    and is not paused, the rows of up to ``scan`` keys whose turn has come
    (skipping those another transaction holds), in one statement. Each row:
    the queue's columns, then a key's (NULLs without one)."""

    def build(c) -> str:
        qn = c.ops.quote_name
        queue = ", ".join(qn(f.column) for f in Queue._meta.concrete_fields)
        key = ", ".join(f"k.{qn(f.column)}" for f in QueueKey._meta.concrete_fields)
        return (
            f"WITH q AS MATERIALIZED (SELECT {queue} FROM"
            f" {qn(Queue._meta.db_table)} WHERE {qn('backend')} = %(backend)s"
            f" AND {qn('name')} = %(name)s FOR UPDATE)"
            f" SELECT q.*, k.* FROM q LEFT JOIN LATERAL (SELECT {key} FROM"
            f" {qn(QueueKey._meta.db_table)} k WHERE k.{qn('backend')} ="
            f" q.{qn('backend')} AND k.{qn('queue')} = q.{qn('name')}"
            f" AND k.{qn('due_at')} <= %(now)s AND NOT q.{qn('paused')}"
            f" AND (q.{qn('key_concurrency')} IS NOT NULL"
            f" OR q.{qn('key_rate_limit')} IS NOT NULL)"
            f" ORDER BY k.{qn('due_at')}, k.{qn('key')} LIMIT %(scan)s"
            " FOR UPDATE SKIP LOCKED) k ON true"
        )

    return _cached(connection, "lock", build).bind(
        backend=backend, name=name, now=now, scan=scan
    )


def claim_keys(connection, **values: Any) -> tuple[str, list[Any]]:
    """PostgreSQL: the whole keyed claim after its lines were locked, in one
    statement (see ``_claim_keys``)."""
    return _cached(connection, "claim", _claim_keys).bind(**values)


def _claim_keys(connection) -> str:
    """Given the locked key rows (``%(ids)s``, ``%(keys)s``, in turn order),
    each key's room in its rate window (``%(rooms)s``) and its starts in the
    window (``%(used)s``): count each key's running jobs (this statement's
    snapshot is younger than the locks), pick each key's jobs in claim order
    up to its room (``django_jobs_job_key_claim``), deal them one per key per
    round up to ``%(limit)s``, lock those (the others are only read) and
    reserve them, and write the rows of the keys
    looked at (see ``keys.looked_at``): served now, their window counts,
    holds and parkings, their next ready job (``django_jobs_job_key_next``)
    and their turn. Returns every column of the reserved jobs."""
    qn = connection.ops.quote_name
    table, lines = qn(Job._meta.db_table), qn(QueueKey._meta.db_table)
    keyed = f"NOT ({qn('limit_key')} = '') AND {qn('queue')} = %(queue)s"
    of_key = f"{keyed} AND {qn('backend')} = %(backend)s AND {qn('limit_key')}"
    conc, rate = "%(conc)s::integer", "%(rate)s::integer"
    count = (
        f"SELECT count(*) FROM {table} WHERE {qn('state')} = 'reserved'"
        f" AND {of_key} = t.key"
    )
    room = f"GREATEST(0, LEAST(t.room, COALESCE({conc} - t.running, t.room)))"
    picked = (
        f"SELECT {qn('id')}, {qn('priority')}, {qn('run_at')} FROM {table}"
        f" WHERE {_due(connection, 't.key')} ORDER BY {_order(connection)}"
        f" LIMIT {room}"
    )
    following = (
        f"SELECT j.{qn('run_at')} FROM {table} j WHERE j.{qn('state')} ="
        f" '{_READY}' AND {of_key} = taken.key AND NOT EXISTS (SELECT 1 FROM"
        f" candidates c WHERE c.id = j.{qn('id')}) ORDER BY j.{qn('run_at')}"
        " LIMIT 1"
    )
    cut = (
        "SELECT CASE WHEN count(*) < %(limit)s THEN 2147483647"
        " ELSE max(turn) FILTER (WHERE round = 1) END FROM candidates"
    )
    return (
        "WITH t AS MATERIALIZED (SELECT t.*, ("
        f"{count}) AS running FROM unnest(%(ids)s::bigint[], %(keys)s::text[],"
        " %(rooms)s::integer[], %(used)s::integer[]) WITH ORDINALITY"
        " AS t(id, key, room, used, turn)),"
        f" picked AS MATERIALIZED (SELECT j.{qn('id')}, t.turn, row_number()"
        f" OVER (PARTITION BY t.turn ORDER BY j.{qn('priority')} DESC,"
        f" j.{qn('run_at')}, j.{qn('id')}) AS round FROM t CROSS JOIN LATERAL"
        f" ({picked}) j),"
        " dealt AS MATERIALIZED (SELECT * FROM picked ORDER BY round, turn"
        " LIMIT %(limit)s),"
        f" candidates AS MATERIALIZED (SELECT j.{qn('id')} AS id, dealt.turn,"
        f" dealt.round FROM dealt JOIN {table} j ON j.{qn('id')} = dealt.{qn('id')}"
        f" WHERE j.{qn('state')} = '{_READY}' FOR UPDATE OF j SKIP LOCKED),"
        f" claimed AS ({reserve_candidates(connection)}),"
        " taken AS (SELECT t.id, t.key, t.used, t.running, count(c.id) AS n"
        f" FROM t LEFT JOIN candidates c ON c.turn = t.turn WHERE t.turn <= ({cut})"
        " GROUP BY t.id, t.key, t.used, t.running),"
        " looked AS MATERIALIZED (SELECT taken.*, CASE WHEN"
        f" taken.used + taken.n >= {rate} THEN %(window_end)s::timestamptz END"
        " AS held,"
        f" CASE WHEN taken.running + taken.n >= {conc}"
        f" THEN %(parked)s::timestamptz END AS parked, ({following}) AS next_at"
        " FROM taken),"
        f" turns AS (UPDATE {lines} SET {qn('served_at')} = %(now)s,"
        f" {qn('window_start')} = COALESCE(%(window)s::timestamptz,"
        f" {lines}.{qn('window_start')}), {qn('window_count')} = CASE WHEN"
        f" %(window)s::timestamptz IS NULL THEN {lines}.{qn('window_count')}"
        f" ELSE looked.used + looked.n END, {qn('held_until')} = looked.held,"
        f" {qn('parked_until')} = looked.parked,"
        f" {qn('next_at')} = looked.next_at, {qn('due_at')} = CASE WHEN"
        " looked.next_at IS NULL THEN NULL ELSE GREATEST(looked.next_at,"
        " %(now)s::timestamptz, looked.held, looked.parked) END FROM looked"
        f" WHERE {lines}.{qn('id')} = looked.id)"
        " SELECT * FROM claimed"
    )
