"""The fork server dies: its children die with it, their attempts count, and
the worker stops (a supervisor restarts cleanly, e.g. under systemd)."""

import os
import signal

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import process_exists, wait_for
from tests.models import Record


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        return int(stat.read().rsplit(")", 1)[1].split()[1])


def test_a_dead_fork_server_stops_the_worker_and_counts_the_attempt(start_worker):
    held = tasks.hang_first_attempt.enqueue("held", 60)
    worker = start_worker("--concurrency", "2")
    child = wait_for(lambda: Record.objects.filter(key="held").first()).pid
    zygote = parent_of(child)
    assert zygote != worker.pid
    os.kill(zygote, signal.SIGKILL)

    assert worker.wait(timeout=30) == 1, worker.output
    assert "the worker's fork server died; stopping" in worker.output
    assert "Traceback" not in worker.output
    wait_for(lambda: not process_exists(child), timeout=10)
    job = Job.objects.get(pk=held.id)
    assert job.state == "ready"  # retried, its attempt counted
    assert job.attempts == 1
    assert (
        job.errors[0]["exception_class_path"] == "django_jobs.exceptions.ChildCrashed"
    )

    again = start_worker("--burst")
    assert again.wait(timeout=30) == 0, again.output
    assert Job.objects.get(pk=held.id).return_value == "attempt 2"
