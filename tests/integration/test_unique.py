"""Unique jobs: one waiting or running job per key, even under races."""

import threading

import pytest
from django.db import connections

from django_jobs import queue
from django_jobs.compat import TaskResultStatus
from django_jobs.exceptions import InvalidTransition
from django_jobs.models import Job
from tests import tasks


def test_a_unique_task_returns_the_waiting_job(db):
    first = tasks.unique_report.enqueue("monday")
    again = tasks.unique_report.enqueue("monday")
    other = tasks.unique_report.enqueue("tuesday")
    assert again.id == first.id
    assert other.id != first.id
    assert Job.objects.count() == 2


def test_a_running_job_is_returned_with_its_state(db):
    first = tasks.unique_report.enqueue("monday")
    queue.claim(worker_id="w")
    again = tasks.unique_report.enqueue("monday")
    assert again.id == first.id
    assert again.status == TaskResultStatus.RUNNING


def test_once_finished_a_new_job_is_made(db):
    first = tasks.unique_report.enqueue("monday")
    (job,) = queue.claim(worker_id="w")
    queue.complete(job.pk, token=job.claim_token)
    again = tasks.unique_report.enqueue("monday")
    assert again.id != first.id


def test_an_explicit_key_ignores_the_arguments(db):
    first = tasks.add.using(unique_key="nightly").enqueue(1, 2)
    second = tasks.add.using(unique_key="nightly").enqueue(3, 4)
    plain = tasks.add.enqueue(1, 2)
    assert second.id == first.id
    assert plain.id != first.id
    assert Job.objects.get(pk=first.id).unique_key == "tests.tasks.add:nightly"


def test_bulk_enqueue_with_duplicates(db):
    results = tasks.unique_report.enqueue_many(
        [(("a",), {}), (("b",), {}), (("a",), {})]
    )
    assert results[0].id == results[2].id
    assert results[1].id != results[0].id
    assert Job.objects.count() == 2


def test_kicking_a_buried_duplicate_is_refused_while_another_waits(db):
    first = tasks.unique_report.enqueue("monday")
    queue.bury(int(first.id))
    second = tasks.unique_report.enqueue("monday")
    assert second.id != first.id
    with pytest.raises(InvalidTransition, match="another job with its key"):
        queue.kick(int(first.id))
    assert queue.kick([int(first.id)]) == 0
    queue.delete(int(second.id))
    assert queue.kick(int(first.id)) == 1


@pytest.mark.parametrize("value", ["", 5, "x" * 201])
def test_bad_unique_keys(value):
    from django_jobs.compat import InvalidTask

    with pytest.raises(InvalidTask, match="unique_key must be a non-empty string"):
        tasks.add.using(unique_key=value)


@pytest.mark.django_db(transaction=True)
def test_concurrent_unique_enqueues_make_one_row():
    results = []
    start = threading.Barrier(6)

    def enqueue():
        try:
            start.wait(timeout=10)
            for _ in range(10):
                results.append(tasks.unique_report.enqueue("race").id)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(results) == 60
    assert len(set(results)) == 1
    assert Job.objects.count() == 1
