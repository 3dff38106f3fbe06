"""Guarantees 2 and 7: exactly once under racing workers; connections stay apart."""

import re

import pytest
from django.db import connection
from django.db.models import Count

from django_jobs.models import Job
from tests import tasks
from tests.models import Record


@pytest.mark.postgres
def test_three_workers_run_300_jobs_exactly_once(start_worker):
    tasks.record_pid.enqueue_many([((f"job{i}",), {}) for i in range(300)])
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(3)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.output
    assert Record.objects.count() == 300
    runs = Record.objects.values("key").annotate(n=Count("id"))
    assert {row["n"] for row in runs} == {1}
    assert Job.objects.filter(state="done", attempts=1).count() == 300
    ran_per_worker = [len(re.findall(r"\): done in", w.output)) for w in workers]
    assert sum(ran_per_worker) == 300
    assert all(ran_per_worker), ran_per_worker  # they really raced


def test_jobs_run_exactly_once_with_two_workers(start_worker):
    tasks.record_pid.enqueue_many([((f"job{i}",), {}) for i in range(60)])
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(2)]
    for worker in workers:
        assert worker.wait(timeout=120) == 0, worker.output
    assert Record.objects.count() == 60
    assert Record.objects.values("key").distinct().count() == 60


def backend_pid(output: str) -> set[str]:
    return set(re.findall(r"database connection pid (\d+)", output))


def test_the_supervisor_connection_survives_1000_children_using_the_orm(start_worker):
    tasks.record_pid.enqueue_many([((f"job{i}",), {}) for i in range(1000)])
    worker = start_worker("--burst", "--concurrency", "2")
    assert worker.wait(timeout=240) == 0, worker.output
    assert Record.objects.count() == 1000
    assert Job.objects.filter(state="done").count() == 1000
    assert "cannot" not in worker.output  # no failed claim or record
    if connection.vendor == "postgresql":
        # The supervisor used one server connection from start to end.
        assert len(backend_pid(worker.output)) == 1, worker.output[-2000:]
