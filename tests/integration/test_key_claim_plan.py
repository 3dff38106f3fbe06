"""The keyed claim walks its indexes, at 10,000 keys (PostgreSQL)."""

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, QueueKey
from django_jobs.queue import key_sql
from django_jobs.queue.keys import scan_size

SCAN = scan_size(8)

KEYS = 10_000
COLUMNS = """(backend, queue, task_path, args, kwargs, state, priority, run_at,
    ttr, attempts, max_attempts, on_failure, enqueued_at, reserved_by,
    claim_token, worker_ids, errors, limit_key)"""
ROW = """SELECT 'default', 'keyed', 'tests.key_tasks.for_customer', '[]', '{{}}',
    {state}, 0, now() - interval '1 minute', 300, 0, 3, 'bury', now(), '', '',
    '[]', '[]', {key} FROM generate_series(1, {count}) AS n"""


def scans(sql, params) -> list[tuple[str, str, str]]:
    """(node type, table, index) of every scan in the statement's plan."""
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql, params)
        found, nodes = [], [cursor.fetchone()[0][0]["Plan"]]
    while nodes:
        node = nodes.pop()
        if "Relation Name" in node:
            found.append(
                (node["Node Type"], node["Relation Name"], node.get("Index Name"))
            )
        nodes += node.get("Plans", [])
    return found


def fill(jobs_per_key: int) -> None:
    """10,000 keys with ready jobs, a busy key, and finished history."""
    batches = [
        ("'ready'", f"'k' || (n % {KEYS})", KEYS * jobs_per_key),
        ("'ready'", "'hot'", 5000),
        ("'done'", "'k' || (n % 100)", 20000),
    ]
    with connection.cursor() as cursor:
        for state, key, count in batches:
            rows = ROW.format(state=state, key=key, count=count)
            cursor.execute(f"INSERT INTO django_jobs_job {COLUMNS} {rows}")
        cursor.execute("ANALYZE django_jobs_job")
        cursor.execute("ANALYZE django_jobs_queuekey")


def values() -> dict:
    return {
        "backend": "default",
        "queue": "keyed",
        "token": "t",
        "worker_id": "w",
        "worker_json": '"w"',
        "limit": 8,
    }


@pytest.mark.postgres
def test_the_keyed_claim_uses_its_indexes_at_10000_keys(db):
    queue.configure("keyed", key_concurrency=2, key_rate_limit="1000/hour")
    fill(jobs_per_key=2)
    assert QueueKey.objects.count() == KEYS + 2  # and the turn of keyless jobs
    keys = ["hot"] + [f"k{n}" for n in range(SCAN - 1)]
    ids = list(
        QueueKey.objects.filter(key__in=keys)
        .order_by("key")
        .values_list("pk", flat=True)
    )
    now = timezone.now()
    plan = scans(
        *key_sql.claim_keys(
            connection,
            ids=ids,
            keys=sorted(keys),
            rooms=[8] * len(keys),
            used=[0] * len(keys),
            conc=2,
            rate=1000,
            window=now,
            window_end=now,
            parked=now,
            now=now,
            **values(),
        )
    )
    on_jobs = {scan for scan in plan if scan[1] == "django_jobs_job" and scan[2]}
    assert {scan[2] for scan in on_jobs} == {
        "django_jobs_job_key_running",  # the running jobs of each key
        "django_jobs_job_key_claim",  # each key's jobs in claim order
        "django_jobs_job_key_next",  # each key's next job after the claim
        "django_jobs_job_pkey",  # the reservation
    }, plan
    assert all(scan[0] != "Seq Scan" for scan in plan), plan
    assert len(queue.claim(worker_id="w", limit=8)) == 8


@pytest.mark.postgres
def test_the_line_and_the_running_counts_use_their_indexes(db):
    queue.configure("keyed", key_concurrency=2)
    fill(jobs_per_key=1)
    queue.claim(worker_id="w", limit=8)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE django_jobs_queuekey")
        cursor.execute("ANALYZE django_jobs_job")
    line = (
        QueueKey.objects.filter(
            backend="default", queue="keyed", due_at__lte=timezone.now()
        )
        .order_by("due_at", "key")[:SCAN]
        .explain()
    )
    assert "django_jobs_queuekey_turn" in line, line
    running = (
        Job.objects.filter(
            backend="default", queue="keyed", state="reserved", limit_key__in=["k1"]
        )
        .exclude(limit_key="")
        .explain()
    )
    assert "django_jobs_job_key_running" in running, running
