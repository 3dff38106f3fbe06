"""Workers wake on NOTIFY (PostgreSQL) and keep their registry row fresh."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for


@pytest.mark.postgres
def test_notify_wakes_an_idle_worker_long_before_its_next_poll(start_worker):
    worker = start_worker("--poll-interval", "60")
    wait_for(Worker.objects.exists, message="registration")
    time.sleep(1)  # idle, children forked, first poll done
    started = time.monotonic()
    result = tasks.add.enqueue(1, 2)
    wait_for(
        lambda: Job.objects.filter(pk=result.id, state="done").exists(),
        timeout=10,
        message="the job to run",
    )
    assert time.monotonic() - started < 5
    # A kick (an UPDATE back to ready) notifies too. (A job buried through
    # the queue: a done one may already be in the history, and stays done.)
    later = timezone.now() + timedelta(hours=1)
    buried = tasks.add.using(run_after=later).enqueue(3, 4)
    queue.bury(int(buried.id))
    queue.kick(int(buried.id))
    wait_for(
        lambda: Job.objects.filter(pk=buried.id, state="done", attempts=1).exists(),
        timeout=10,
        message="the kicked job to run",
    )
    worker.send(15)
    assert worker.wait() == 0, worker.output


def test_heartbeats_and_jobs_in_hand(start_worker):
    tasks.sleep.enqueue(3, key="running")
    worker = start_worker("--concurrency", "2")
    row = wait_for(
        lambda: Worker.objects.filter(jobs_in_hand=1).first(), message="heartbeat"
    )
    assert row.pid == worker.pid
    assert row.concurrency == 2
    first = row.last_heartbeat
    wait_for(
        lambda: Worker.objects.get(pk=row.pk).last_heartbeat > first,
        timeout=10,
        message="a second heartbeat",
    )
    worker.send(15)
    assert worker.wait() == 0, worker.output
    assert not Worker.objects.exists()
