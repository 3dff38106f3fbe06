"""A database that goes away, hangs, and comes back (via a proxy, PostgreSQL
and MariaDB).

The worker reaches the test database through ``DatabaseProxy``, which a test
cuts or freezes: the server every other test uses is untouched.
"""

import signal
import time

import pytest
from django.db import connection

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Record

pytestmark = pytest.mark.skipif(
    connection.vendor == "sqlite", reason="a file database cannot go away"
)


def test_outcomes_wait_for_a_database_that_went_away(start_worker, proxy):
    slow = [tasks.sleep.enqueue(1.5, key=f"slow{i}") for i in range(2)]
    worker = start_worker("--concurrency", "2", database_url=proxy.url(proxy.name))
    wait_for(lambda: Record.objects.filter(key__startswith="slow").count() == 2)
    proxy.down()  # the jobs finish while the database is away
    time.sleep(4)
    assert Job.objects.filter(state="reserved").count() == 2
    proxy.up()
    wait_for(
        lambda: (
            Job.objects.filter(pk__in=[r.id for r in slow], state="done").count() == 2
        ),
        timeout=30,
        message="outcomes recorded once the database is back",
    )
    after = tasks.add.enqueue(1, 2)  # and the worker goes on claiming
    wait_for(lambda: Job.objects.filter(pk=after.id, state="done").exists())
    assert all(Job.objects.get(pk=r.id).attempts == 1 for r in slow)
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output


HUNG_MARIADB = pytest.mark.skipif(
    connection.vendor == "mysql",
    reason="mysqlclient waits for a hung server in C, where no signal handler runs:"
    " the stop waits for the statement (docs/databases.rst, read_timeout)",
)


@pytest.mark.parametrize("fault", ["down", pytest.param("hang", marks=HUNG_MARIADB)])
def test_sigterm_stops_a_worker_within_its_bound_whatever_the_database_does(
    start_worker, proxy, fault
):
    """--shutdown-timeout 2 and KILL_GRACE 1: gone within about 4 s."""
    running = tasks.sleep.enqueue(1, key="running")
    worker = start_worker(
        "--concurrency", "1", "--shutdown-timeout", "2",
        database_url=proxy.url(proxy.name),
    )  # fmt: skip
    wait_for(lambda: Record.objects.filter(key="running").exists())
    getattr(proxy, fault)()
    time.sleep(1.5)  # the job ends; its outcome cannot be written
    started = time.monotonic()
    worker.send(signal.SIGTERM)
    code = worker.wait(timeout=15)
    took = time.monotonic() - started
    assert took < 6, f"took {took:.1f} s\n{worker.output}"  # 4 s, and a loaded machine
    assert code == 1, worker.output  # it could not record everything
    proxy.up()
    job = Job.objects.get(pk=running.id)
    assert job.state == "reserved"  # not lost: rescued once its lease runs out
    assert job.reserved_by


def test_a_lost_database_is_one_line_when_it_goes_and_one_when_it_is_back(
    start_worker, proxy
):
    worker = start_worker(
        "--concurrency", "1", "--poll-interval", "0.2",
        database_url=proxy.url(proxy.name),
    )  # fmt: skip
    wait_for(lambda: "started" in worker.output)
    proxy.down()
    time.sleep(6)  # a claim each poll, a heartbeat, a rescue pass: all fail
    proxy.up()
    done = tasks.add.enqueue(1, 2)
    wait_for(lambda: Job.objects.filter(pk=done.id, state="done").exists())
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output
    output = worker.output
    assert output.count("database 'default' unavailable") == 1, output
    assert output.count("database 'default' back after") == 1, output
    assert "Traceback" not in output
