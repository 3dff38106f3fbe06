"""Schedules, deadlines, queue limits and retention with real workers."""

import time
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, Schedule
from tests import tasks
from tests.acceptance.test_running import most_at_once
from tests.models import Record


def test_two_workers_fire_each_tick_of_a_schedule_once(start_worker):
    Schedule.objects.create(
        name="every-2s",
        task_path="tests.tasks.tick",
        cron="* * * * * */2",  # croniter's optional sixth field: seconds
        args=["beat"],
        created_at=timezone.now(),
    )
    workers = [start_worker("--concurrency", "1") for _ in range(2)]
    time.sleep(9)
    for worker in workers:
        worker.send(15)
        assert worker.wait() == 0, worker.output
    ticks = Job.objects.values("scheduled_for").annotate(n=Count("id"))
    assert len(ticks) >= 3
    assert {tick["n"] for tick in ticks} == {1}  # never twice
    # All ran, but perhaps the last, enqueued as the workers were stopping.
    assert Job.objects.filter(state="done").count() >= len(ticks) - 1
    assert not Job.objects.exclude(state__in=["done", "ready"]).exists()


def test_an_expired_job_is_never_started(start_worker):
    late = tasks.record_pid.using(expires=0.5).enqueue("too-late")
    time.sleep(1)
    on_time = tasks.record_pid.using(expires=60).enqueue("on-time")
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    assert list(Record.objects.values_list("key", flat=True)) == ["on-time"]
    job = Job.objects.get(pk=late.id)
    assert job.state == "buried"
    assert job.errors[-1]["exception_class_path"] == "django_jobs.exceptions.JobExpired"
    assert Job.objects.get(pk=on_time.id).state == "done"


def test_a_queue_limit_holds_across_workers(start_worker):
    queue.configure("limited", max_concurrency=2)
    tasks.limited_overlap.enqueue_many([((f"j{i}", 0.4), {}) for i in range(8)])
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(3)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.output
    assert Record.objects.count() == 16
    assert most_at_once(Record.objects.all()) == 2


def test_the_pruner_deletes_old_finished_jobs(start_worker):
    old = tasks.add.enqueue(1, 2)
    recent = tasks.add.enqueue(3, 4)
    Job.objects.filter(pk=old.id).update(
        state="done", finished_at=timezone.now() - timedelta(days=8)
    )
    Job.objects.filter(pk=recent.id).update(state="done", finished_at=timezone.now())
    worker = start_worker("--burst")
    assert worker.wait() == 0, worker.output
    assert list(Job.objects.values_list("pk", flat=True)) == [int(recent.id)]
    assert "pruned 1 done and 0 buried job(s)" in worker.output
