"""Several workers on one database: one leads the fleet's duties, and a new
job wakes a worker that can take it rather than every worker.

The test settings heartbeat every 0.5 s, so a lease lasts 1.5 s.
"""

from __future__ import annotations

import os
import re
import signal
import time
from datetime import timedelta

import pytest

from django_jobs.models import Job, Lease, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for

LEADS = "runs the fleet's duties"
CLAIMS = re.compile(r"; (\d+) claim\(s\)")


def stop(*workers) -> None:
    for worker in workers:
        worker.send(signal.SIGTERM)
    for worker in workers:
        assert worker.wait() == 0, worker.output


def claims(worker) -> int:
    (count,) = CLAIMS.findall(worker.output)
    return int(count)


def idle_rows(count: int):
    """All ``count`` workers registered and, by their last claim, idle."""
    return Worker.objects.filter(room__gt=0).count() == count


@pytest.mark.postgres
def test_a_new_job_wakes_one_idle_worker_not_all_of_them(start_worker):
    # No polls during the test: only the notifications wake the workers.
    workers = [start_worker("--poll-interval", "60") for _ in range(4)]
    wait_for(lambda: idle_rows(4), message="four idle workers")
    time.sleep(0.5)

    for number in range(5):
        result = tasks.add.enqueue(number, 1)
        wait_for(
            lambda result=result: Job.objects.filter(
                pk=result.id, state="done"
            ).exists(),
            timeout=10,
            message="the job to run",
        )
        wait_for(lambda: idle_rows(4), message="the workers idle again")
    stop(*workers)

    # Each worker claimed once as it started. Then each job cost the claim
    # of the worker it woke and that worker's look for more once it was
    # done: 2 per job. Every idle worker claiming on every job would be
    # 4 + 5 x (4 + 1) = 29.
    total = sum(claims(worker) for worker in workers)
    assert total <= 4 + 5 * 2, [worker.output for worker in workers]


@pytest.mark.postgres
def test_the_leader_wakes_workers_for_delayed_jobs_that_come_due(start_worker):
    # Listening workers poll every LISTEN_POLL_INTERVAL (30 s); the leader
    # looks for due jobs every --poll-interval.
    workers = [start_worker("--poll-interval", "0.5") for _ in range(2)]
    wait_for(lambda: idle_rows(2), message="two idle workers")
    enqueued = time.monotonic()
    result = tasks.add.using(run_after=timedelta(seconds=2)).enqueue(1, 2)
    wait_for(
        lambda: Job.objects.filter(pk=result.id, state="done").exists(),
        timeout=20,
        message="the delayed job to run",
    )
    assert time.monotonic() - enqueued < 6
    stop(*workers)


def test_when_the_leader_dies_another_worker_takes_over_its_duties(start_worker):
    first = start_worker()
    wait_for(lambda: LEADS in first.output, message="the first worker to lead")
    held = tasks.sleep.enqueue(4, key="first run")
    wait_for(
        lambda: Job.objects.filter(pk=held.id, state="reserved").exists(),
        message="the leader to claim the job",
    )
    others = [start_worker(), start_worker()]
    wait_for(lambda: Worker.objects.count() == 3, message="three workers")

    os.killpg(first.pid, signal.SIGKILL)

    # The rescuer, which only the leader runs, takes the dead worker's job
    # back: a second attempt, by one of the others.
    wait_for(
        lambda: Job.objects.filter(pk=held.id, state="done", attempts=2).exists(),
        timeout=30,
        message="the dead leader's job to be rescued and run again",
    )
    leaders = [worker for worker in others if LEADS in worker.output]
    assert len(leaders) == 1, [worker.output for worker in others]
    lease = Lease.objects.get(name="default")
    assert lease.holder == Worker.objects.get(pid=leaders[0].pid).id
    stop(*others)
    assert not Worker.objects.exists()
