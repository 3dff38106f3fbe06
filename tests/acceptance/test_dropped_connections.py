"""A worker whose database connection the server ends (PostgreSQL).

``pg_terminate_backend``, a restart, a failover or a pooler can end the
supervisor's connection while the server itself answers at once: the worker
reconnects at once, claims on, and says so in one line, not as an outage.
The worker runs with ``PGAPPNAME`` set, so that its connections can be told
from the test's; its LISTEN connection is left alone.
"""

from __future__ import annotations

import signal

import pytest
from django.db import connection

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for

pytestmark = pytest.mark.postgres

APPLICATION = "django-jobs-dropped"


def end_the_workers_connection() -> int:
    """pg_terminate_backend on the supervisor's connection; how many ended."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
            "FROM pg_stat_activity WHERE application_name = %s "
            "AND query NOT LIKE 'LISTEN %%'",
            [APPLICATION],
        )
        return cursor.fetchone()[0]


def done(result) -> bool:
    return Job.objects.filter(pk=result.id, state="done").exists()


def test_a_connection_the_server_ended_is_replaced_at_once(start_worker):
    worker = start_worker("--concurrency", "1", PGAPPNAME=APPLICATION)
    first = tasks.add.enqueue(1, 1)
    wait_for(lambda: done(first), message="the worker to start")
    for i in range(5):
        wait_for(end_the_workers_connection, message="the worker's connection")
        result = tasks.add.enqueue(i, 2)
        wait_for(lambda: done(result), message="a job claimed after the drop")  # noqa: B023
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    output = worker.output
    assert " unavailable (" not in output, output
    assert "it reconnected at once" in output, output
    assert "Traceback" not in output
