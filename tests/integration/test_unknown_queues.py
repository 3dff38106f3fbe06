"""Pause and resume refuse a queue that nothing knows, and leave no phantom.

A queue is known when TASKS names it (QUEUES or QUEUE_LIMITS), it has a
row (it was paused or limited), or it holds a job. Anything else is most
likely a typo: pausing it used to create a row that the dashboard and
``jobs stats`` listed forever, while the queue meant went on running.
"""

import pytest
from django.utils import timezone

from django_jobs import queue, stats
from django_jobs.exceptions import UnknownQueue
from django_jobs.models import Queue
from django_jobs.queue.console import configured_queues


def test_pausing_an_unknown_queue_is_refused_and_changes_nothing(make_job):
    make_job(queue="emails")
    with pytest.raises(UnknownQueue) as refused:
        queue.pause("emials")
    assert str(refused.value) == (
        "Unknown queue 'emials' in backend 'default': it is not in QUEUES and "
        "holds no job. Known queues: emails."
    )
    assert refused.value.known == ["emails"]
    assert not Queue.objects.exists()
    with pytest.raises(UnknownQueue):
        queue.resume("emials")


def test_known_queues_are_those_configured_with_a_row_or_with_jobs(make_job):
    queue.pause("default", backend="strict")  # in TASKS["strict"]["QUEUES"]
    make_job(queue="reports")
    queue.pause("reports")  # holds a job
    queue.configure("limited", max_concurrency=2)
    queue.pause("limited")  # has a row
    paused = Queue.objects.filter(paused=True)
    assert {(q.backend, q.name) for q in paused} == {
        ("strict", "default"),
        ("default", "reports"),
        ("default", "limited"),
    }


def test_the_known_list_names_one_backends_queues(make_job):
    make_job(queue="reports", backend="strict")
    with pytest.raises(UnknownQueue) as refused:
        queue.pause("reports")  # of the default backend: no job there
    assert refused.value.known == []
    assert "Known queues: none yet." in str(refused.value)
    with pytest.raises(UnknownQueue) as refused:
        queue.pause("nosuch", backend="strict")
    assert refused.value.known == ["default", "emails", "reports"]


def test_a_paused_queue_whose_jobs_were_pruned_can_be_resumed(make_job):
    job = make_job(queue="reports")
    queue.pause("reports")
    queue.delete(job.pk)
    queue.resume("reports")
    assert not Queue.objects.get(name="reports").paused


def test_a_row_with_nothing_to_show_is_not_listed(db):
    # What a pause of a mistyped name left behind before it was refused.
    Queue.objects.create(name="nosuch", paused=True)
    listed = {row.name for row in stats.queue_rows(timezone.now(), "default")}
    assert "nosuch" in listed  # paused: worth a line
    queue.resume("nosuch")  # it has a row, so it can be resumed
    listed = {row.name for row in stats.queue_rows(timezone.now(), "default")}
    assert "nosuch" not in listed


def test_configured_queues_are_a_backends_queues(db):
    assert configured_queues("strict") == {"default", "emails"}
    assert configured_queues("nope") == set()
