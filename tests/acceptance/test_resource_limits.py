"""Memory and CPU-time limits per job (issue 22): real workers, real leaks.

A job over its limit is killed with its process tree and fails an attempt
that follows its task's retry policy; the worker, its other children and
the next job carry on. Every attempt's usage is recorded.
"""

from __future__ import annotations

from django_jobs.models import Job
from tests import resource_tasks as rt
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record

LIMIT = "300MB"


def _pid(key: str) -> int:
    return wait_for(lambda: Record.objects.filter(key=key).first(), message=key).pid


def test_a_leaking_job_is_killed_at_its_limit_and_the_rest_is_unharmed(start_worker):
    leaking = rt.leak.using(max_memory=LIMIT, max_attempts=1).enqueue("leak")
    beside = tasks.sleep.enqueue(1.5, key="beside")
    worker = start_worker("--concurrency", "2", "--burst")
    pid = _pid("leak")
    wait_for(lambda: Job.objects.get(pk=leaking.id).state == "buried", message="bury")
    after = tasks.add.enqueue(1, 2)  # the next job, after the kill
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=leaking.id)
    (error,) = job.errors
    assert error["exception_class_path"] == "django_jobs.exceptions.MemoryLimitExceeded"
    used, limit = error["traceback"].split(": ", 1)[1].split("; ")[0].split(", ")
    assert used.startswith("used ")
    assert limit == "limit 300 MB"
    (usage,) = job.usage
    assert usage["attempt"] == 1
    assert usage["max_rss"] > 300 * rt.MB
    # caught within a few samples: it grows ~2 GB/s at most here
    assert usage["max_rss"] < 900 * rt.MB, usage
    assert not process_exists(pid)
    assert Job.objects.get(pk=beside.id).state == "done"
    assert Job.objects.get(pk=after.id).state == "done"
    assert "over its limit" in worker.output


def test_a_grandchild_that_leaks_is_caught(start_worker):
    leaking = rt.leak_in_grandchild.using(max_memory=LIMIT, max_attempts=1).enqueue(
        "forker"
    )
    worker = start_worker("--burst")
    grandchild = _pid("forker-grandchild")
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=leaking.id)
    assert job.state == "buried"
    assert job.errors[0]["exception_class_path"].endswith("MemoryLimitExceeded")
    # the tree's sample: the child's own usage never saw its grandchild's
    assert job.usage[0]["max_rss"] > 300 * rt.MB
    assert not process_exists(grandchild)


def test_a_spinning_job_is_stopped_at_its_cpu_limit(start_worker):
    spinning = rt.spin.using(max_cpu_seconds=1, max_attempts=1, ttr=60).enqueue("spin")
    worker = start_worker("--burst")
    pid = _pid("spin")
    assert worker.wait(timeout=60) == 0, worker.output
    job = Job.objects.get(pk=spinning.id)
    assert job.state == "buried"
    (error,) = job.errors
    assert error["exception_class_path"] == "django_jobs.exceptions.CPULimitExceeded"
    assert "limit 1 s" in error["traceback"]
    assert 1 <= job.usage[0]["cpu"] < 3, job.usage
    assert not process_exists(pid)


def test_an_attempt_over_its_limit_is_retried_after_its_backoff(start_worker):
    spinning = rt.spin.using(max_cpu_seconds=0.3, max_attempts=2).enqueue("again")
    start_worker(
        "--poll-interval", "0.1", DJANGO_SETTINGS_MODULE="tests.backoff_settings"
    )
    wait_for(
        lambda: Job.objects.get(pk=spinning.id).state == "buried", message="buried"
    )
    job = Job.objects.get(pk=spinning.id)
    assert (job.attempts, len(job.errors), len(job.usage)) == (2, 2, 2)
    assert [used["attempt"] for used in job.usage] == [1, 2]
    first, second = Record.objects.filter(key="again").order_by("pk")
    waited = (second.created_at - first.created_at).total_seconds()
    assert waited >= 0.75 * 2 + 0.3, waited  # RETRY_BACKOFF 2 s, jittered -25 %


def test_the_worker_flag_limits_jobs_whose_task_sets_none(start_worker):
    leaking = rt.leak.using(max_attempts=1).enqueue("flag")
    worker = start_worker("--burst", "--max-memory", "250MiB")
    assert worker.wait(timeout=60) == 0, worker.output
    (error,) = Job.objects.get(pk=leaking.id).errors
    assert "limit 262 MB" in error["traceback"]


def test_usage_is_recorded_for_ordinary_attempts(start_worker):
    small = rt.allocate.enqueue(80)
    busy = rt.burn.enqueue(0.5)
    failing = tasks.fail.using(max_attempts=1).enqueue()
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait(timeout=60) == 0, worker.output
    (allocated,) = Job.objects.get(pk=small.id).usage
    assert allocated["attempt"] == 1
    assert allocated["max_rss"] > 80 * rt.MB
    assert allocated["wall"] >= 0.2
    (burnt,) = Job.objects.get(pk=busy.id).usage
    assert 0.5 <= burnt["cpu"] < 1.5
    assert burnt["wall"] >= 0.5
    (failed,) = Job.objects.get(pk=failing.id).usage
    assert failed["max_rss"] > 0
    assert failed["cpu"] is not None
