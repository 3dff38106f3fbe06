"""The table of keys follows the jobs: every way a job of a key becomes ready
brings the key's next job forward, and a running job that stops lifts the
parking of its key (database triggers, on PostgreSQL and SQLite alike)."""

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, QueueKey
from tests import key_tasks

ERROR = {"exception_class_path": "builtins.ValueError", "traceback": "boom"}


def row(key="a"):
    return QueueKey.objects.get(queue="keyed", key=key)


def claimed_one(key="a"):
    (job,) = queue.claim(worker_id="w", limit=1)
    assert job.limit_key == key
    return job


def test_an_enqueue_makes_the_row(db):
    result = key_tasks.for_customer.enqueue("a")
    job = Job.objects.get(pk=result.id)
    assert (row().next_at, row().due_at) == (job.run_at, job.run_at)
    later = key_tasks.for_customer.using(run_after=timedelta(hours=1)).enqueue("a")
    assert row().next_at == job.run_at  # the earlier job stays the next one
    assert Job.objects.get(pk=later.id).run_at > row().next_at


def test_a_retry_brings_the_next_job_back(db):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.for_customer.enqueue("a")
    job = claimed_one()
    assert row().next_at is None  # nothing else is ready
    written = queue.retry(job.pk, token=job.claim_token, error=ERROR, delay=60)
    assert row().next_at == written["run_at"]
    assert row().due_at >= written["run_at"]
    assert queue.claim(worker_id="w", limit=1) == []  # not due yet


def test_a_kick_brings_the_next_job_back(db):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.for_customer.enqueue("a")
    job = claimed_one()
    queue.bury(job.pk, token=job.claim_token, error=ERROR)
    assert row().next_at is None
    queue.kick(job.pk)
    assert row().next_at == Job.objects.get(pk=job.pk).run_at
    assert claimed_one().pk == job.pk


def test_a_rescue_brings_the_next_job_back(db):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.for_customer.enqueue("a")
    job = claimed_one()
    Job.objects.filter(pk=job.pk).update(
        reserved_until=timezone.now() - timedelta(seconds=1)
    )
    queue.rescue(backoff=(0, 0))
    rescued = Job.objects.get(pk=job.pk)
    assert rescued.state == "ready"
    assert row().next_at == rescued.run_at
    assert row().parked_until is None  # its running job stopped
    assert claimed_one().pk == job.pk


def test_a_row_written_by_hand_is_seen(db):
    queue.configure("keyed", key_concurrency=1)
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO django_jobs_job (backend, queue, task_path, args, kwargs,
                state, priority, run_at, ttr, attempts, max_attempts, on_failure,
                enqueued_at, reserved_by, claim_token, worker_ids, errors,
                limit_key)
            VALUES ('default', 'keyed', 'tests.key_tasks.for_customer', '["h"]',
                '{}', 'ready', 0, %s, 300, 0, 3, 'bury', %s, '', '', '[]', '[]',
                'h')""",
            [now, now],
        )
    assert row("h").next_at is not None
    assert claimed_one("h").args == ["h"]


def test_a_parked_key_comes_back_when_its_job_ends(db):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.for_customer.enqueue("a")
    key_tasks.for_customer.enqueue("a")
    job = claimed_one()
    parked = row()
    assert parked.parked_until is not None
    assert parked.due_at == parked.parked_until  # out of the line meanwhile
    assert queue.claim(worker_id="w", limit=5) == []
    queue.complete(job.pk, token=job.claim_token)
    back = row()
    assert back.parked_until is None
    assert back.due_at == max(back.next_at, back.served_at)
    assert claimed_one().pk != job.pk


def test_a_released_claim_brings_its_jobs_back(db):
    queue.configure("keyed", key_concurrency=2)
    key_tasks.for_customer.enqueue("a")
    key_tasks.for_customer.enqueue("a")
    jobs = queue.claim(worker_id="w", limit=5, token="t1")
    assert len(jobs) == 2
    assert row().next_at is None
    assert queue.release_claim(["t1"], "w") == sorted(job.pk for job in jobs)
    assert row().next_at == min(job.run_at for job in jobs)
    assert len(queue.claim(worker_id="w", limit=5)) == 2


def test_a_key_with_no_job_left_leaves_the_line(db):
    queue.configure("keyed", key_concurrency=3)
    key_tasks.for_customer.enqueue("a")
    claimed_one()
    assert row().due_at is None
    Job.objects.all().delete()  # by hand: the row goes stale, and is mended
    key_tasks.for_customer.enqueue("b")
    QueueKey.objects.filter(key="a").update(
        next_at=timezone.now(), due_at=timezone.now()
    )
    assert [job.limit_key for job in queue.claim(worker_id="w", limit=5)] == ["b"]
    assert row("a").due_at is None


def test_idle_keys_are_pruned_after_a_day(db):
    queue.configure("keyed", key_rate_limit="5/hour")
    key_tasks.for_customer.enqueue("a")
    key_tasks.for_customer.enqueue("b")
    job = claimed_one()
    queue.complete(job.pk, token=job.claim_token)
    now = timezone.now()
    assert queue.prune_keys(backend="default", now=now) == 0  # its window runs
    later = now + timedelta(days=1, hours=2)
    assert queue.prune_keys(backend="default", now=later) == 1
    assert set(QueueKey.objects.values_list("key", flat=True)) == {"", "b"}
    key_tasks.for_customer.enqueue("a")  # a new job: a new row
    assert row("a").next_at is not None
