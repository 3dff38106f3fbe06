"""A running job cancelled from the console is stopped within seconds."""

import time

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record


def test_cancelling_a_running_job_stops_it_and_buries_it(start_worker):
    result = tasks.sleep.using(max_attempts=3).enqueue(60, key="cancel-me")
    after = tasks.add.enqueue(1, 2)
    worker = start_worker("--concurrency", "1", "--burst")
    record = wait_for(lambda: Record.objects.filter(key="cancel-me").first())
    asked = time.monotonic()
    assert queue.cancel(int(result.id)) == 1
    wait_for(
        lambda: Job.objects.filter(pk=result.id, state="buried").exists(),
        timeout=15,
        message="the job to be buried",
    )
    assert time.monotonic() - asked < 10
    job = Job.objects.get(pk=result.id)
    assert job.attempts == 1  # not retried
    assert (
        job.errors[-1]["exception_class_path"] == "django_jobs.exceptions.JobCancelled"
    )
    assert not process_exists(record.pid)
    assert worker.wait(timeout=30) == 0, worker.output
    assert Job.objects.get(pk=after.id).state == "done"
