"""Races between enqueuing a waiting job and finishing what it waits for.

Two connections, two threads: one enqueues a job after a running job and
holds its transaction open; the other completes (or fails) the running job
meanwhile. Whatever the order, the waiting job is released (or ended) once,
when the enqueue commits, never left waiting.
"""

from __future__ import annotations

import threading
import time

import pytest
from django.db import connections, transaction

from django_jobs import queue
from django_jobs.models import Job
from django_jobs.workflows import after
from tests import workflow_tasks as w

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def claimed_job() -> Job:
    w.crawl.enqueue("x")
    (job,) = queue.claim(worker_id="w", limit=1)
    return job


def in_thread(target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def enqueue_and_hold(parent: Job, held: threading.Event, go: threading.Event, out):
    """Enqueue a job after ``parent`` and keep the transaction open."""
    with transaction.atomic(), after(parent.pk):
        out.append(w.match.enqueue())
        held.set()
        go.wait(10)


def test_a_completion_that_waited_for_the_enqueue_releases_the_new_job():
    parent = claimed_job()
    held, go, out = threading.Event(), threading.Event(), []
    enqueuing = in_thread(lambda: enqueue_and_hold(parent, held, go, out))
    assert held.wait(10)
    completing = in_thread(
        lambda: queue.complete(parent.pk, token=parent.claim_token, return_value=1)
    )
    time.sleep(0.3)  # the completion started, and waits for the row lock
    go.set()
    enqueuing.join(10)
    completing.join(10)
    waiting = Job.objects.get(pk=out[0].id)
    assert (waiting.state, waiting.waiting_for) == ("ready", 0)


def test_a_failure_that_waited_for_the_enqueue_ends_the_new_job():
    parent = claimed_job()
    held, go, out = threading.Event(), threading.Event(), []
    enqueuing = in_thread(lambda: enqueue_and_hold(parent, held, go, out))
    assert held.wait(10)
    error = queue.attempt_error(parent, "builtins.ValueError", "ValueError: no\n")
    failing = in_thread(
        lambda: queue.bury_held(parent.pk, token=parent.claim_token, error=error)
    )
    time.sleep(0.3)
    go.set()
    enqueuing.join(10)
    failing.join(10)
    ended = Job.objects.get(pk=out[0].id)
    assert ended.state == "buried"  # the cascade is a statement after the wait
    assert ended.blocked_by_id == parent.pk
