"""Each attempt's usage is written with its outcome, and shown by ``jobs show``."""

from io import StringIO

from django.core.management import call_command

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks

USED = {"attempt": 1, "max_rss": 123_400_000, "cpu": 0.25, "wall": 1.5}


def show(job_id: int) -> str:
    out = StringIO()
    call_command("jobs", "show", str(job_id), stdout=out, stderr=StringIO())
    return out.getvalue()


def test_a_completion_appends_the_attempts_usage_in_its_statement(db):
    used, plain = (
        queue.enqueue(task_path="tests.tasks.add"),
        queue.enqueue(task_path="tests.tasks.add"),
    )
    first, second = queue.claim(worker_id="w", limit=2)
    written = queue.complete_returning(
        [(first.pk, first.claim_token, 1, USED), (second.pk, second.claim_token, 2)]
    )
    assert set(written) == {used.pk, plain.pk}
    assert Job.objects.get(pk=first.pk).usage == [USED]
    assert Job.objects.get(pk=second.pk).usage == []


def test_a_failure_appends_it_whatever_follows(db):
    job = queue.enqueue(task_path="tests.tasks.add", max_attempts=2)
    for attempt in (1, 2):
        (claimed,) = queue.claim(worker_id="w")
        error = queue.attempt_error(claimed, "x.Boom", "Boom\n")
        queue.fail(claimed, error, backoff=(0, 0), usage={**USED, "attempt": attempt})
    job.refresh_from_db()
    assert job.state == "buried"
    assert [used["attempt"] for used in job.usage] == [1, 2]


def test_limits_are_written_at_enqueue_and_shown_with_the_usage(db):
    result = tasks.add.using(max_memory="512MB", max_cpu_seconds=30).enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert (job.max_memory, job.max_cpu_seconds) == (512_000_000, 30.0)
    assert Job.objects.get(pk=tasks.add.enqueue(1, 2).id).max_memory is None
    (claimed,) = queue.claim(worker_id="w", limit=1)
    queue.complete_returning([(claimed.pk, claimed.claim_token, 3, USED)])
    out = show(job.pk)
    assert "limits memory 512 MB, CPU 30 s" in out
    assert "Usage, newest first:" in out
    assert "  1        123 MB       250 ms  1.50 s" in out


def test_many_jobs_enqueued_at_once_carry_their_limits(db):
    limited = tasks.add.using(max_memory="2GiB", max_cpu_seconds=0.5)
    results = limited.enqueue_many([((1, 2), {}), ((3, 4), {})])
    rows = Job.objects.filter(pk__in=[r.id for r in results])
    assert {(row.max_memory, row.max_cpu_seconds) for row in rows} == {(2**31, 0.5)}
