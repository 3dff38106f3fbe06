"""Jobs that touch and checkpoint while the worker's database is away
(PostgreSQL and MariaDB: a server the worker reaches over TCP).

The worker reaches the test database through ``DatabaseProxy``: ``down()``
cuts its connections and refuses new ones (what a failover or a restart of
the server does to it), ``up()`` lets it back. The jobs (tests/blip_tasks.py)
never use the database themselves; they say through files how far they got,
and finish when the test creates their ``finish`` file.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from django.db import connection

from django_jobs.models import Job
from tests import blip_tasks
from tests.acceptance.conftest import wait_for

pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="a file database cannot go away"
)


class Run:
    """One job of tests/blip_tasks.py and the files it talks through."""

    def __init__(self, directory: Path, name: str, task, **options) -> None:
        self.steps = directory / f"{name}.steps"
        self.finish = directory / f"{name}.finish"
        self.result = task.using(**options).enqueue(str(self.steps), str(self.finish))

    def step(self) -> int:
        try:
            return int(self.steps.read_text() or 0)
        except (FileNotFoundError, ValueError):
            return 0

    def goes_on(self, steps: int, message: str) -> None:
        """Wait until the job has taken ``steps`` more steps."""
        start = self.step()
        wait_for(lambda: self.step() >= start + steps, timeout=30, message=message)

    def row(self) -> Job:
        return Job.objects.get(pk=self.result.id)


def test_jobs_that_touch_and_checkpoint_ride_out_a_database_outage(
    start_worker, proxy, tmp_path
):
    toucher = Run(tmp_path, "touch", blip_tasks.touch_until, ttr=300)
    saver = Run(tmp_path, "save", blip_tasks.checkpoint_until, ttr=300)
    worker = start_worker("--concurrency", "2", database_url=proxy.url(proxy.name))
    for run in (toucher, saver):
        run.goes_on(2, "the job to start touching")
    proxy.down()
    for run in (toucher, saver):
        run.goes_on(5, "the job to go on while the database is away")
    saver.finish.touch()  # its last checkpoint and its outcome wait for the database
    toucher.goes_on(10, "the job to go on touching for 2 s more")
    proxy.up()
    toucher.finish.touch()
    wait_for(
        lambda: {toucher.row().state, saver.row().state} == {"done"},
        timeout=30,
        message="both jobs done once the database is back",
    )
    touched, saved = toucher.row(), saver.row()
    assert (touched.attempts, saved.attempts) == (1, 1), (worker.output, saved.errors)
    assert saved.return_value > 5
    assert saved.checkpoint == {"step": saved.return_value}  # the latest one
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    output = worker.output
    assert output.count("database 'default' unavailable") == 1, output
    assert output.count("database 'default' back after") == 1, output
    assert "Traceback" not in output


def test_a_reservation_that_runs_out_while_the_database_is_away_is_a_timeout(
    start_worker, proxy, tmp_path
):
    """Touches are kept while the reservation has time; once it runs out the
    job is stopped like any job past its ttr, and recorded once the database
    is back (docs/tasks.rst, "Long jobs: touch")."""
    toucher = Run(tmp_path, "touch", blip_tasks.touch_until, ttr=2, max_attempts=1)
    worker = start_worker("--concurrency", "1", database_url=proxy.url(proxy.name))
    toucher.goes_on(2, "the job to start touching")
    proxy.down()
    wait_for(
        lambda: "ran past its deadline" in worker.output,
        timeout=30,
        message="the job stopped once its reservation ran out",
    )
    proxy.up()
    toucher.finish.touch()
    wait_for(
        lambda: toucher.row().state == "buried",
        timeout=30,
        message="the timeout recorded once the database is back",
    )
    row = toucher.row()
    assert row.attempts == 1
    [error] = row.errors
    assert error["exception_class_path"] == "django_jobs.exceptions.JobTimeout"
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
