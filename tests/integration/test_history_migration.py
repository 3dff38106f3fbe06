"""Migration 0017 (the history) backwards: the done jobs come back into the
job table and the day tables go, so that an older release, or ``migrate
django_jobs zero``, finds the job table without children."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("django_jobs", "0016_worker_skipped_queues")


def migrate(targets) -> None:
    MigrationExecutor(connection).migrate(targets)


def latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes("django_jobs")


def in_hot_table() -> int:
    only = "ONLY " if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {only}django_jobs_job")
        return cursor.fetchone()[0]


def done_job(value: int) -> int:
    job = queue.enqueue(task_path="tests.tasks.noop", priority=100)
    (claimed,) = queue.claim(worker_id="w1", limit=1, queues=[job.queue])
    queue.complete(claimed.pk, token=claimed.claim_token, return_value=value)
    return job.pk


def test_backwards_brings_the_done_jobs_back():
    moved = [done_job(n) for n in range(3)]
    if connection.vendor == "postgresql":
        queue.history.move(before=timezone.now())
        assert in_hot_table() == 0
        assert queue.history.tables()
    migrate([BEFORE])
    try:
        if connection.vendor == "postgresql":
            assert queue.history.tables() == {}
        assert in_hot_table() == 3
        assert sorted(Job.objects.values_list("pk", "return_value")) == [
            (pk, n) for n, pk in enumerate(moved)
        ]
    finally:
        migrate(latest())
    assert Job.objects.filter(state="done").count() == 3
