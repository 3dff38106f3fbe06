"""The claim walks the partial index of ready jobs, whatever the history."""

import json

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job
from django_jobs.worker.supervisor_connection import PLANNER_SETTINGS


def plan_of(sql, params):
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        return json.dumps(cursor.fetchone()[0])


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("queues", "index"),
    [
        # Any queue: the index of every queue's ready jobs (or, for a bitmap
        # of a few rows, either; the worker turns bitmaps off).
        (None, ("django_jobs_job_claim", "django_jobs_job_queue_claim")),
        (["default"], ("django_jobs_job_queue_claim",)),
        (["emails", "default"], ("django_jobs_job_queue_claim",)),
    ],
)
def test_claim_uses_the_claim_index_with_50000_done_jobs(db, queues, index):
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
    assert {scan["Index Name"] for scan in index_scans(json.loads(plan)[0]["Plan"])}
    assert {
        scan["Index Name"] for scan in index_scans(json.loads(plan)[0]["Plan"])
    } <= set(index), plan
    assert '"Node Type": "Seq Scan"' not in plan, plan
    assert len(queue.claim(worker_id="w1", queues=queues, limit=5)) == 5


def ready_jobs(queue_name: str, count: int, priority: int = 0) -> None:
    """``count`` ready jobs of ``queue_name``, due a minute ago, in SQL."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"""INSERT INTO {Job._meta.db_table} (backend, queue, task_path, args,
                kwargs, state, priority, run_at, ttr, attempts, max_attempts,
                on_failure, enqueued_at, reserved_by, claim_token, worker_ids, errors)
            SELECT 'default', %s, 'tests.tasks.noop', '[]', '{{}}', 'ready', %s,
                %s - interval '1 minute' + n * interval '1 microsecond', 300, 0, 3,
                'bury', %s, '', '', '[]', '[]'
            FROM generate_series(1, %s) AS n""",
            [queue_name, priority, timezone.now(), timezone.now(), count],
        )


@pytest.mark.postgres
@pytest.mark.parametrize("queues", [["b"], ["b", "c"]])
def test_a_claim_of_named_queues_does_not_walk_the_backlog_of_another(db, queues):
    """Queue a's 20,000 jobs sort before b's (same priority, due earlier):
    walking one index of every queue in claim order, a claim of b read them
    all. Each queue's own index reads a handful of rows."""
    ready_jobs("a", 20_000)
    ready_jobs("b", 10)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")
    sql, params = queue.claim_statement(
        connection, worker_id="w1", queues=queues, limit=5, backend="default"
    )
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) " + sql, params)
        plan = cursor.fetchone()[0][0]["Plan"]
    scans = list(index_scans(plan))
    assert scans, plan
    assert {scan["Index Name"] for scan in scans} == {"django_jobs_job_queue_claim"}
    assert sum(scan["Actual Rows"] for scan in scans) <= 5 * len(queues), plan
    assert all(scan.get("Rows Removed by Filter", 0) == 0 for scan in scans), plan


def index_scans(plan: dict):
    """The plan's scans for candidates (not the UPDATE's look-up by id)."""
    if plan.get("Index Name", "").endswith("claim"):
        yield plan
    for child in plan.get("Plans", []):
        yield from index_scans(child)


@pytest.mark.postgres
def test_a_claim_of_several_queues_takes_their_jobs_in_claim_order(db):
    ready_jobs("a", 3)
    ready_jobs("b", 2, priority=5)
    ready_jobs("c", 3)
    claimed = queue.claim(worker_id="w1", queues=["a", "b", "c"], limit=4)
    assert [job.queue for job in claimed][:2] == ["b", "b"]
    rest = claimed[2:]
    assert [job.run_at for job in rest] == sorted(job.run_at for job in rest)
    again = queue.claim(worker_id="w2", queues=["a", "b", "c"], limit=10)
    assert len(again) == 4  # each job once: the rows the first claim took are skipped
    assert not {job.pk for job in claimed} & {job.pk for job in again}


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
    """The worker prepares its claim and runs it with the plan made once for
    any parameters. That plan must still walk the partial index."""
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
        for setting in PLANNER_SETTINGS:  # the worker's, generic plans included
            cursor.execute(setting.replace("SET ", "SET LOCAL ", 1))
        cursor.execute(f"PREPARE generic_claim ({', '.join(types)}) AS {numbered}")
        cursor.execute(
            "EXPLAIN (FORMAT JSON) EXECUTE generic_claim"
            f" ({', '.join(['%s'] * len(params))})",
            params,
        )
        plan = json.dumps(cursor.fetchone()[0])
        cursor.execute("DEALLOCATE generic_claim")
    assert "django_jobs_job_claim" in plan, plan


@pytest.mark.postgres
def test_the_generic_plan_of_a_claim_of_named_queues_walks_their_own_index(db):
    ready_jobs("a", 20_000)
    ready_jobs("b", 10)
    sql, params = queue.claim_statement(
        connection, worker_id="w1", queues=["b", "c"], limit=5, backend="default"
    )
    numbered = sql
    for number in range(1, len(params) + 1):
        numbered = numbered.replace("%s", f"${number}", 1)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Job._meta.db_table}")
        for setting in PLANNER_SETTINGS:
            cursor.execute(setting.replace("SET ", "SET LOCAL ", 1))
        cursor.execute(f"PREPARE named_claim AS {numbered}")
        cursor.execute(
            "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE named_claim"
            f" ({', '.join(['%s'] * len(params))})",
            params,
        )
        plan = cursor.fetchone()[0][0]["Plan"]
        cursor.execute("DEALLOCATE named_claim")
    scans = list(index_scans(plan))
    assert {scan["Index Name"] for scan in scans} == {"django_jobs_job_queue_claim"}
    assert sum(scan["Actual Rows"] for scan in scans) <= 10, plan


@pytest.mark.postgres
def test_a_queue_named_twice_is_claimed_as_one(db):
    ready_jobs("a", 3)
    claimed = queue.claim(worker_id="w1", queues=["a", "a"], limit=3)
    assert len({job.pk for job in claimed}) == 3
