"""Two real workers, one SIGKILLed: from the moment its LISTEN session ends,
the jobs' wake-ups go to the survivor, none to the dead.

Heartbeats are 15 s apart here, so for 15 s after the kill the live
worker's heartbeats cannot take the dead worker's room (that needs it silent
for two heartbeats, see test_silent_worker_wakes.py): the end of its session
does it. The workers
poll every 60 s, so each single job below starts quickly only by its own
wake-up; the count of wake-ups on the dead worker's channel does not depend
on timing at all.
"""

from __future__ import annotations

import os
import signal

import pytest

from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.listener_sessions import Ears, alive

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.listener_session_settings"}


def claimed(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, started_at__isnull=False).exists()


@pytest.mark.postgres
def test_a_killed_workers_ended_session_takes_no_wake_ups(start_worker):
    victim, survivor = (
        start_worker("--poll-interval", "60", "--concurrency", "2", **SETTINGS)
        for _ in range(2)
    )
    wait_for(  # room: the first heartbeat after their children are forked
        lambda: (
            Worker.objects.filter(listener_pid__isnull=False, room__gt=0).count() == 2
        ),
        timeout=60,
        message="two idle workers listening, their sessions recorded",
    )
    dead = Worker.objects.get(pid=victim.pid)
    survivor_id = Worker.objects.get(pid=survivor.pid).id
    ears = Ears(dead.id)
    try:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        wait_for(
            lambda: not alive(dead.listener_pid),
            timeout=10,
            message="the server to end the killed worker's session",
        )
        job_ids = []
        for number in range(10):  # each alone: only its own wake-up starts it
            job_ids.append(int(tasks.add.enqueue(number, 1).id))
            wait_for(
                lambda: claimed(job_ids[-1]),
                timeout=10,
                message=f"single job {number} to be claimed",
            )
        assert ears.heard(wait=0.2) == []
    finally:
        ears.close()

    # Its row still says it has room: the end of its session kept it unwoken.
    assert Worker.objects.get(pk=dead.id).room > 0
    wait_for(
        lambda: Job.objects.filter(pk__in=job_ids, state="done").count() == 10,
        timeout=30,
        message="the ten jobs to be done",
    )
    ran_by = Job.objects.filter(pk__in=job_ids).values_list("worker_ids", flat=True)
    assert {tuple(ids) for ids in ran_by} == {(survivor_id,)}
    survivor.send(signal.SIGTERM)
    assert survivor.wait() == 0, survivor.output
