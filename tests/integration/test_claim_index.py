"""The claim walks the partial index of ready jobs, whatever the history."""

import json

import pytest
from django.db import connection

from django_jobs import queue
from django_jobs.models import Job


def plan_of(sql, params):
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        return json.dumps(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.parametrize("queues", [None, ["emails", "default"]])
def test_claim_uses_the_claim_index_with_50000_done_jobs(db, queues):
    table = Job._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {table} (backend, queue, task_path, args, kwargs, state,
                priority, run_at, ttr, attempts, max_attempts, on_failure, enqueued_at,
                finished_at, reserved_by, claim_token, worker_ids, errors)
            SELECT 'default', 'default', 'tests.tasks.noop', '[]', '{{}}', 'done',
                0, now(), 300, 1, 3, 'bury', now(), now(), '', '', '["w"]', '[]'
            FROM generate_series(1, 50000)"""
        )
        cursor.execute(f"ANALYZE {table}")
    for _ in range(20):
        queue.enqueue(task_path="tests.tasks.noop")
    sql, params = queue.claim_statement(
        connection, worker_id="w1", queues=queues, limit=5, backend="default"
    )
    plan = plan_of(sql, params)
    assert "django_jobs_job_claim" in plan, plan
    assert '"Node Type": "Seq Scan"' not in plan, plan
    assert len(queue.claim(worker_id="w1", queues=queues, limit=5)) == 5


def test_claim_statement_shape_on_every_database(db):
    sql, params = queue.claim_statement(
        connection, worker_id="w1", queues=["a", "b"], limit=3, backend="default"
    )
    assert "ORDER BY" in sql
    assert "RETURNING" in sql
    assert "'ready'" in sql  # not a parameter: see test below
    assert params[0] == "default"
    if connection.vendor == "postgresql":
        assert "FOR UPDATE SKIP LOCKED" in sql


@pytest.mark.postgres
def test_the_generic_plan_of_the_prepared_claim_uses_the_claim_index(db):
    """The worker prepares its claim; after five runs PostgreSQL may plan it
    once for any parameters. That plan must still walk the partial index."""
    for _ in range(20):
        queue.enqueue(task_path="tests.tasks.noop")
    sql, params = queue.claim_statement(
        connection, worker_id="w1", queues=None, limit=5, backend="default"
    )
    numbered = sql
    for number in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${number}", 1)
    types = ["text", "timestamptz", "timestamptz", "text"]  # the limit is written
    types += ["text", "text", "timestamptz", "timestamptz", "timestamptz", "text"]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute(f"PREPARE generic_claim ({', '.join(types)}) AS {numbered}")
        cursor.execute(
            "EXPLAIN (FORMAT JSON) EXECUTE generic_claim"
            f" ({', '.join(['%s'] * len(params))})",
            params,
        )
        plan = json.dumps(cursor.fetchone()[0])
        cursor.execute("DEALLOCATE generic_claim")
    assert "django_jobs_job_claim" in plan, plan
