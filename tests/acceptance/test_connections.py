"""Database connections of a worker: bounded, and opened ahead of ORM jobs."""

import signal
import threading
import time

import pytest

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for, worker_connections

pytestmark = pytest.mark.postgres


def test_connections_stay_within_two_plus_two_per_slot(start_worker):
    concurrency = 3
    jobs = [tasks.sleep.enqueue(0.3, key=f"orm{i}") for i in range(18)]
    seen: list[int] = []
    ready, done = threading.Event(), threading.Event()

    def sample():  # in a thread, with a connection of its own
        seen.append(worker_connections())  # before the worker: the test's own
        ready.set()
        while not done.is_set():
            seen.append(worker_connections())
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    ready.wait(timeout=10)
    ours = seen[0]
    try:
        worker = start_worker("--burst", "--concurrency", str(concurrency))
        assert worker.wait(timeout=60) == 0, worker.output
    finally:
        done.set()
        sampler.join(timeout=10)
    assert Job.objects.filter(pk__in=[j.id for j in jobs], state="done").count() == 18
    # The supervisor, its LISTEN connection, and per slot a running child
    # and a spare (docs/worker.rst: 2 + 2 x concurrency).
    most = max(seen) - ours
    assert most <= 2 + 2 * concurrency, seen
    assert most >= 2 + concurrency  # it was measuring something


def test_spare_children_connect_ahead_of_an_orm_job(start_worker):
    for i in range(3):
        tasks.record.enqueue(f"r{i}")  # jobs that use the ORM
    ours = worker_connections()
    worker = start_worker("--concurrency", "1")
    wait_for(lambda: Job.objects.filter(state="done").count() == 3)
    # Idle now: the supervisor, its LISTEN connection, and the spare child,
    # which connected while it waited (the jobs it saw used the ORM).
    wait_for(
        lambda: worker_connections() - ours == 3, timeout=10, message="a warm spare"
    )
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0
    wait_for(lambda: worker_connections() == ours, timeout=10, message="all closed")
