"""Guarantee 2 on MariaDB/MySQL: eight workers racing claim each job once.

MariaDB has no UPDATE ... RETURNING: a claim there locks its rows (SKIP
LOCKED), updates them and reads them back in one short transaction, and
InnoDB reports deadlocks between such transactions more often than
PostgreSQL does. The queue package retries them; none may reach a job.
"""

import re

import pytest
from django.db import connection
from django.db.models import Count

from django_jobs.models import Job
from tests import tasks
from tests.models import Record

WORKERS = 8
JOBS = 400


def test_eight_workers_run_every_job_exactly_once(start_worker):
    if connection.vendor != "mysql":
        pytest.skip("the MariaDB/MySQL claim path; PostgreSQL has its own race test")
    tasks.record_pid.enqueue_many([((f"job{i}",), {}) for i in range(JOBS)])
    workers = [start_worker("--burst", "--concurrency", "2") for _ in range(WORKERS)]
    for worker in workers:
        assert worker.wait(timeout=240) == 0, worker.output
    assert Record.objects.count() == JOBS
    runs = Record.objects.values("key").annotate(n=Count("id"))
    assert {row["n"] for row in runs} == {1}
    assert Job.objects.filter(state="done", attempts=1).count() == JOBS
    ran = [len(re.findall(r"\): done in", worker.output)) for worker in workers]
    assert sum(ran) == JOBS
    assert sum(1 for n in ran if n) >= 2, ran  # they really raced
    for worker in workers:
        assert "Deadlock" not in worker.output, worker.output[-2000:]
        assert "cannot claim" not in worker.output, worker.output[-2000:]
