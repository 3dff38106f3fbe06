"""Deadlines (expires), per-queue limits and retention, at the queue level."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.compat import InvalidTask
from django_jobs.models import Job, Queue
from tests import tasks

# Deadlines


def test_expires_is_relative_to_run_after(db):
    result = tasks.add.using(run_after=timedelta(minutes=5), expires=60).enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert job.expires_at == job.run_at + timedelta(seconds=60)
    absolute = timezone.now() + timedelta(hours=1)
    job = Job.objects.get(pk=tasks.add.using(expires=absolute).enqueue(1, 2).id)
    assert job.expires_at == absolute


def test_an_expired_job_is_never_claimed_and_is_buried(db):
    result = tasks.add.using(expires=timedelta(seconds=1)).enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    fresh = tasks.add.using(expires=3600).enqueue(3, 4)
    assert [job.pk for job in queue.claim(worker_id="w", limit=10)] == [int(fresh.id)]
    assert queue.expire() == 1
    job = Job.objects.get(pk=result.id)
    assert job.state == "buried"
    assert job.attempts == 0
    assert job.errors[-1]["exception_class_path"] == "django_jobs.exceptions.JobExpired"


def test_an_expired_job_is_deleted_when_its_task_says_so(db):
    result = tasks.add.using(expires=1, on_failure="delete").enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(expires_at=timezone.now())
    assert queue.expire() == 1
    assert not Job.objects.filter(pk=result.id).exists()


@pytest.mark.parametrize("value", [0, -5, "soon", float("inf"), timedelta(0), True])
def test_bad_expires(value):
    with pytest.raises(InvalidTask, match="expires must be"):
        tasks.add.using(expires=value)


# Limits


def test_max_concurrency_across_claims(make_job):
    queue.configure("limited", max_concurrency=2)
    for _ in range(5):
        make_job(queue="limited")
    other = make_job(queue="default")
    first = queue.claim(worker_id="w1", limit=10)
    assert sorted(job.queue for job in first) == ["default", "limited", "limited"]
    assert other.pk in [job.pk for job in first]
    assert queue.claim(worker_id="w2", limit=10) == []
    (done, *_) = [job for job in first if job.queue == "limited"]
    queue.complete(done.pk, token=done.claim_token)
    assert [job.queue for job in queue.claim(worker_id="w2", limit=10)] == ["limited"]


def test_rate_limit_spends_tokens(make_job):
    queue.configure("limited", rate_limit=2)
    for _ in range(6):
        make_job(queue="limited")
    assert len(queue.claim(worker_id="w", limit=10)) == 2
    assert len(queue.claim(worker_id="w", limit=10)) == 0
    time.sleep(0.6)
    assert len(queue.claim(worker_id="w", limit=10)) == 1


def test_a_paused_limited_queue_gives_nothing(make_job):
    queue.configure("limited", max_concurrency=5)
    queue.pause("limited")
    make_job(queue="limited")
    assert queue.claim(worker_id="w", limit=10) == []


def test_lifting_limits(make_job):
    queue.configure("limited", max_concurrency=1)
    make_job(queue="limited")
    make_job(queue="limited")
    assert len(queue.claim(worker_id="w", limit=10)) == 1
    queue.configure("limited")
    assert queue.limited_queues() == []
    assert Queue.objects.get(name="limited").max_concurrency is None
    assert len(queue.claim(worker_id="w", limit=10)) == 1


# Retention


def finished(make_job, state, age):
    job = make_job()
    Job.objects.filter(pk=job.pk).update(
        state=state, finished_at=timezone.now() - timedelta(days=age)
    )
    return job.pk


def test_prune_deletes_only_what_is_old_enough(make_job):
    old_done = finished(make_job, "done", 10)
    new_done = finished(make_job, "done", 1)
    old_buried = finished(make_job, "buried", 40)
    new_buried = finished(make_job, "buried", 10)
    ready = make_job().pk
    now = timezone.now()
    arguments = {
        "done_before": now - timedelta(days=7),
        "buried_before": now - timedelta(days=30),
        "batch_size": 1,
    }
    assert queue.prune(**arguments, dry_run=True) == {"done": 1, "buried": 1}
    assert Job.objects.count() == 5
    assert queue.prune(**arguments) == {"done": 1, "buried": 1}
    left = set(Job.objects.values_list("pk", flat=True))
    assert left == {new_done, new_buried, ready}
    assert old_done not in left
    assert old_buried not in left


def test_prune_can_keep_a_state_forever(make_job):
    finished(make_job, "done", 100)
    counts = queue.prune(done_before=None, buried_before=timezone.now())
    assert counts == {"done": 0, "buried": 0}
    assert Job.objects.count() == 1
