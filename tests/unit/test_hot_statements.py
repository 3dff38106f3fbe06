"""The hot statements are built with their parameters, named where they are
used, on both databases: one parameter per placeholder, each where it
belongs, and the states they guard on from the state table.

No database is needed: the statements are only built, for a PostgreSQL and
a SQLite connection that never connect.
"""

import json
from datetime import UTC, datetime

import pytest
from django.db.utils import ConnectionHandler

from django_jobs import states
from django_jobs.queue import sql, sql_insert
from django_jobs.queue.guard import unreserved
from django_jobs.queue.named import Statement

NOW = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
HANDLER = ConnectionHandler(
    {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "postgresql": {"ENGINE": "django.db.backends.postgresql", "NAME": "unused"},
    }
)


@pytest.fixture(params=["default", "postgresql"], ids=["sqlite", "postgresql"])
def connection(request):
    return HANDLER[request.param]


def literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def rendered(statement: str, params: list) -> str:
    """The statement with its parameters in place; a TypeError if there are
    more or fewer parameters than placeholders."""
    assert statement.replace("%%", "").count("%s") == len(params)
    return statement % tuple(literal(value) for value in params)


def claim(connection, **shape):
    return sql.claim(
        connection,
        **{
            "backend": "bk",
            "now": NOW,
            "queues": [],
            "excluded": [],
            "limit": 7,
            "token": "tok",
            "worker_id": "w1",
            **shape,
        },
    )


@pytest.mark.parametrize("queues", [[], ["a"], ["a", "b"]])
@pytest.mark.parametrize("excluded", [[], ["x"], ["x", "y", "z"]])
@pytest.mark.parametrize("room", [False, True])
def test_the_claim_has_one_parameter_per_placeholder(
    connection, queues, excluded, room
):
    text = rendered(*claim(connection, queues=queues, excluded=excluded, room=room))
    now = literal(connection.ops.adapt_datetimefield_value(NOW))
    assert '"backend" = \'bk\' AND "run_at" <= ' + now in text
    assert '"expires_at" > ' + now in text
    # The jobs and the paused queues; on PostgreSQL, once per queue named
    # beyond the first (each queue's jobs are picked on their own).
    arms = len(queues) if connection.vendor == "postgresql" and queues else 1
    assert text.count("\"backend\" = 'bk'") == 2 * arms
    if arms > 1:
        for name in queues:
            assert f'"queue" = {literal(name)}' in text
    elif queues:
        assert f'"queue" IN ({", ".join(map(literal, queues))})' in text
    if excluded:
        assert f'"queue" NOT IN ({", ".join(map(literal, excluded))})' in text
    assert "LIMIT 7" in text
    assert "\"claim_token\" = 'tok', \"reserved_by\" = 'w1'" in text
    assert f'COALESCE("started_at", {now}), "last_attempted_at" = {now}' in text
    assert "'\"w1\"'" in text  # the worker's id as JSON, appended to worker_ids
    if room and connection.vendor == "postgresql":
        assert "GREATEST(7 - count(*), 0)" in text
        assert '"django_jobs_worker"."id" = \'w1\'' in text
    else:
        assert "GREATEST" not in text


def test_the_claims_states_come_from_the_state_table(connection):
    text, _ = claim(connection)
    source = states.only_source("claim")
    assert f"WHERE \"state\" = '{source.value}'" in text  # written in: see sql.claim
    assert f"SET \"state\" = '{states.target('claim').value}'" in text


@pytest.mark.parametrize("count", [1, 3, 65])
def test_the_completion_has_one_parameter_per_placeholder(connection, count):
    used = {"attempt": 1, "max_rss": 2048, "cpu": 0.5, "wall": 1.0}
    outcomes = [(n, f"t{n}", {"n": n}, used) for n in range(1, count + 1)]
    text = rendered(
        *sql.completion(connection, outcomes=outcomes, now=NOW, cleared=unreserved())
    )
    kept = literal(json.dumps(used))
    rows = ", ".join(
        f"({n}, 't{n}', '{{\"n\": {n}}}', {kept})" for n in range(1, count + 1)
    )
    assert f"AS (VALUES {rows})" in text
    now = literal(connection.ops.adapt_datetimefield_value(NOW))
    done = states.target("complete").value
    assert f'SET "state" = \'{done}\', "finished_at" = {now},' in text
    cleared = ", ".join(f'"{name}" = {literal(v)}' for name, v in unreserved().items())
    assert f"{cleared} FROM v" in text
    held = states.only_source("complete").value
    assert f'"django_jobs_job"."state" = \'{held}\' RETURNING' in text


def test_the_completion_keeps_values_of_any_json_type(connection):
    outcomes = [(1, "t", None, None), (2, "t", "it's", None), (3, "t", [1.5, 1], None)]
    _, params = sql.completion(
        connection, outcomes=outcomes, now=NOW, cleared=unreserved()
    )
    assert params[:12] == [
        1, "t", "null", None, 2, "t", '"it\'s"', None, 3, "t", "[1.5, 1]", None
    ]  # fmt: skip


def test_a_statement_may_only_have_named_placeholders():
    statement = Statement.named("SELECT %(a)s, %(b.1)s, %(b.0)s, '%%Y', %(a)s")
    assert statement.sql == "SELECT %s, %s, %s, '%%Y', %s"
    assert statement.bind(a=1, b=["x", "y"], unused=2) == (
        statement.sql,
        [1, "y", "x", 1],
    )
    with pytest.raises(ValueError, match="unnamed placeholder"):
        Statement.named("SELECT %(a)s, %s")
    with pytest.raises(KeyError):
        statement.bind(b=["x", "y"])


def test_only_source_is_the_one_state_an_operation_starts_from():
    assert states.only_source("claim") == states.State.READY
    assert states.only_source("complete") == states.State.RESERVED
    with pytest.raises(ValueError, match="bury starts from 3 states"):
        states.only_source("bury")


SHARED = {
    "backend": "bk", "queue": "q", "task_path": "tests.tasks.add", "state": "ready",
    "priority": 5, "run_at": "2025-01-02", "ttr": 60, "max_attempts": 3,
    "on_failure": "bury", "enqueued_at": "2025-01-01", "expires_at": None,
    "schedule_id": None, "scheduled_for": None, "parent_id": 9, "batch_id": None,
    "workflow_id": None, "waiting_for": 0, "runs_anyway": False,
    "downstream_count": 0, "max_memory": 2**31, "max_cpu_seconds": 1.5,
    "trace_context": '{"traceparent": "00-ab"}',
}  # fmt: skip


@pytest.mark.parametrize("count", [1, 2, 50])
def test_the_insert_has_each_column_its_value(connection, count):
    calls = [
        ([n], {"k": "it's"}, f"key{n}" if n % 2 else "", f"c{n % 3}")
        for n in range(count)
    ]
    text = rendered(*sql_insert.insert(connection, shared=SHARED, calls=calls))
    columns, _, values = text.partition(") ")
    names = [name.strip('" ') for name in columns.partition("(")[2].split(",")]
    assert names[: len(sql_insert.INSERT_SHARED)] == list(sql_insert.INSERT_SHARED)
    jsonb = "::jsonb" if connection.vendor == "postgresql" else ""
    shared = ", ".join(
        literal(SHARED[name]) + (jsonb if name in sql_insert.JSON_SHARED else "")
        for name in sql_insert.INSERT_SHARED
    )
    assert shared in values
    if count == 1:
        assert f"{shared}, '[0]'" in values
        assert literal(json.dumps({"k": "it's"})) in values
        assert "'c0'" in values  # the call's limit key
    else:  # the calls travel as one JSON parameter
        assert literal(json.dumps(calls)) in values


def test_the_insert_needs_every_shared_column(connection):
    shared = {name: 1 for name in sql_insert.INSERT_SHARED if name != "ttr"}
    with pytest.raises(KeyError, match="ttr"):
        sql_insert.insert(connection, shared=shared, calls=[([], {}, "", "")])
