"""Guarantee 3: a worker killed with SIGKILL loses nothing."""

import signal

from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record


def test_jobs_of_a_killed_worker_run_again_on_another_worker(start_worker):
    result = tasks.hang_first_attempt.enqueue("victim")
    first = start_worker("--concurrency", "1")
    record = wait_for(
        lambda: Record.objects.filter(key="victim").first(), message="start"
    )
    first.send(signal.SIGKILL)
    first.wait(timeout=10)
    # The child dies with its worker: it must not keep running the job.
    wait_for(lambda: not process_exists(record.pid), timeout=10, message="child exit")
    assert Job.objects.get(pk=result.id).state == "reserved"

    second = start_worker("--concurrency", "1")
    wait_for(
        lambda: Job.objects.filter(pk=result.id, state="done").exists(),
        timeout=30,
        message="recovery",
    )
    job = Job.objects.get(pk=result.id)
    assert job.attempts == 2
    assert job.return_value == "attempt 2"
    assert job.errors[0]["exception_class_path"] == "django_jobs.exceptions.WorkerLost"
    assert Record.objects.filter(key="victim").count() == 2
    assert list(Worker.objects.values_list("pid", flat=True)) == [second.pid]
    second.send(signal.SIGTERM)
    assert second.wait() == 0, second.output
