"""Operations behind the admin console: cancel, reprioritise, pause and resume."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.exceptions import InvalidTransition
from django_jobs.models import Job, Queue


def test_cancel_buries_a_waiting_job_at_once(make_job):
    ready = make_job()
    delayed = make_job(run_at=timezone.now() + timedelta(hours=1))
    assert queue.cancel([ready.pk, delayed.pk]) == 2
    for job in Job.objects.filter(pk__in=[ready.pk, delayed.pk]):
        assert job.state == "buried"
        assert job.errors[-1]["exception_class_path"] == (
            "django_jobs.exceptions.JobCancelled"
        )


def test_cancel_marks_a_running_job_for_its_worker(claimed):
    job = claimed()
    assert queue.cancel(job.pk) == 1
    job.refresh_from_db()
    assert job.state == "reserved"  # its worker stops it and buries it
    assert job.cancel_requested_at is not None
    assert queue.cancel([job.pk]) == 0  # already marked


def test_cancel_refuses_finished_jobs(claimed):
    job = claimed()
    queue.complete(job.pk, token=job.claim_token)
    with pytest.raises(InvalidTransition, match="Cannot cancel"):
        queue.cancel(job.pk)


def test_reprioritise(make_job, claimed):
    ready, running = make_job(), claimed()
    assert queue.reprioritise([ready.pk, running.pk], 42) == 1
    assert Job.objects.get(pk=ready.pk).priority == 42
    with pytest.raises(InvalidTransition, match="Cannot reprioritise"):
        queue.reprioritise(running.pk, 1)
    with pytest.raises(ValueError, match="from -100 to 100"):
        queue.reprioritise(ready.pk, 101)


def test_a_paused_queue_is_not_claimed_from(make_job):
    email = make_job(queue="emails")
    report = make_job(queue="reports")
    queue.pause("emails")
    assert Queue.objects.get(name="emails").paused
    assert [j.pk for j in queue.claim(worker_id="w", limit=10)] == [report.pk]
    assert queue.claim(worker_id="w", queues=["emails"]) == []
    queue.resume("emails")
    assert [j.pk for j in queue.claim(worker_id="w", limit=10)] == [email.pk]


def test_pausing_one_backend_leaves_the_other_alone(make_job):
    job = make_job(queue="emails", backend="strict")
    make_job(queue="emails", run_at=timezone.now() + timedelta(hours=1))
    queue.pause("emails")  # the default backend's queue (known: it holds a job)
    assert [j.pk for j in queue.claim(worker_id="w", backend="strict")] == [job.pk]
