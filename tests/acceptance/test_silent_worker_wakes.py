"""Two real workers, one SIGKILLed under a steady load: the jobs keep
starting on the survivor.

The killed worker's row stays until the rescuer presumes it dead (60 s in
these settings, as by default); wake-ups must not go to it meanwhile. The
workers poll every 60 s and listening workers every 30 s, so a job whose
wake-up went to the dead worker would wait far longer than the bounded
waits below.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.silent_worker_settings"}
#: How long the steady load goes on, at most, before the single jobs.
LOAD_SECONDS = 10.0


def claimed(job_id: int) -> bool:
    return Job.objects.filter(pk=job_id, started_at__isnull=False).exists()


@pytest.mark.postgres
def test_jobs_enqueued_after_a_worker_is_killed_start_on_the_survivor(start_worker):
    victim, survivor = (
        start_worker("--poll-interval", "60", "--concurrency", "2", **SETTINGS)
        for _ in range(2)
    )
    wait_for(
        lambda: Worker.objects.filter(room__gt=0).count() == 2,
        timeout=60,
        message="two idle workers",
    )
    survivor_id = Worker.objects.get(pid=survivor.pid).id
    dead_id = Worker.objects.get(pid=victim.pid).id
    os.killpg(victim.pid, signal.SIGKILL)

    # A steady load (a job every 50 ms) until the survivor's heartbeat has
    # taken the dead worker's room, or LOAD_SECONDS.
    after_kill: list[int] = []
    deadline = time.monotonic() + LOAD_SECONDS
    while time.monotonic() < deadline:
        after_kill.append(int(tasks.add.enqueue(1, 1).id))
        if not Worker.objects.filter(pk=dead_id, room__gt=0).exists():
            break
        time.sleep(0.05)
    # Then single jobs, each alone: only its own wake-up can start it.
    for number in range(10):
        job_id = int(tasks.add.enqueue(number, 1).id)
        after_kill.append(job_id)
        wait_for(
            lambda job_id=job_id: claimed(job_id),
            timeout=10,
            message=f"job {job_id} (single job {number}) to be claimed",
        )

    wait_for(
        lambda: (
            Job.objects.filter(pk__in=after_kill, state="done").count()
            == len(after_kill)
        ),
        timeout=30,
        message="every job enqueued after the kill to be done",
    )
    ran_by = Job.objects.filter(pk__in=after_kill).values_list("worker_ids", flat=True)
    assert {tuple(ids) for ids in ran_by} == {(survivor_id,)}
    survivor.send(signal.SIGTERM)
    assert survivor.wait() == 0, survivor.output
