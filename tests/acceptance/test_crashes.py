"""Guarantees 4 and 5: hung jobs are killed, crashed children are failed attempts."""

import pytest

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record


def test_a_job_past_its_ttr_is_killed_with_its_process_group(start_worker):
    hung = tasks.hang_with_grandchild.using(ttr=1, max_attempts=1).enqueue("hung")
    after = tasks.add.enqueue(1, 2)
    worker = start_worker("--concurrency", "1", "--burst")
    record = wait_for(lambda: Record.objects.filter(key="hung").first(), message="job")
    assert worker.wait(timeout=30) == 0, worker.output
    job = Job.objects.get(pk=hung.id)
    assert job.state == "buried"
    error = job.errors[0]
    assert error["exception_class_path"] == "django_jobs.exceptions.JobTimeout"
    assert "ran past its ttr of 1s" in error["traceback"]
    assert not process_exists(record.pid)
    assert not process_exists(int(record.job_id))  # the grandchild died too
    assert Job.objects.get(pk=after.id).state == "done"  # the worker carried on


def test_a_timed_out_job_with_attempts_left_is_retried(start_worker):
    result = tasks.sleep.using(ttr=1, max_attempts=2).enqueue(30)
    worker = start_worker("--burst")
    assert worker.wait(timeout=30) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert (job.state, job.attempts, len(job.errors)) == ("buried", 2, 2)


def test_touching_keeps_a_job_alive_past_its_ttr(start_worker):
    result = tasks.touch_and_sleep.using(ttr=2).enqueue(steps=4, seconds=1)
    worker = start_worker("--burst")
    assert worker.wait(timeout=30) == 0, worker.output
    job = Job.objects.get(pk=result.id)
    assert (job.state, job.return_value, job.attempts) == ("done", 4, 1)


@pytest.mark.parametrize(
    ("task", "args", "how"),
    [
        (tasks.exit_with, (3,), "exit code 3"),
        (tasks.kill_self, (9,), "killed by signal 9 (SIGKILL)"),
        (tasks.kill_self, (11,), "killed by signal 11 (SIGSEGV)"),
    ],
)
def test_a_crashed_child_is_a_failed_attempt(start_worker, task, args, how):
    crashed = task.using(max_attempts=2).enqueue(*args)
    after = tasks.add.enqueue(1, 2)
    worker = start_worker("--burst", "--concurrency", "1")
    assert worker.wait(timeout=30) == 0, worker.output
    job = Job.objects.get(pk=crashed.id)
    assert (job.state, job.attempts) == ("buried", 2)
    for error in job.errors:
        assert error["exception_class_path"] == "django_jobs.exceptions.ChildCrashed"
        assert how in error["traceback"]
    assert Job.objects.get(pk=after.id).state == "done"
