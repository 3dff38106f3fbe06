"""Workers that grow with their backlog (``--concurrency MIN:MAX``): real
``runworker`` processes, with ``SCALE_DOWN_AFTER`` of 2 s (scaling_settings).
"""

from __future__ import annotations

import itertools
import re
import signal
import threading
import time

import pytest
from django.db import connection

from django_jobs.models import Job, Worker
from tests import tasks
from tests.acceptance.conftest import wait_for, worker_connections
from tests.soak import procs

pytestmark = pytest.mark.database_agnostic

SETTINGS = {"DJANGO_SETTINGS_MODULE": "tests.scaling_settings"}
CHANGE = re.compile(r"(growing|shrinking) to (\d+) children")


def changes(output: str) -> list[tuple[str, int]]:
    return [(way, int(size)) for way, size in CHANGE.findall(output)]


def session_processes(pid: int) -> int:
    """Processes of the worker's session: the supervisor, the zygote and
    the children (each child leads a process group of its own)."""
    return len(procs.in_session(pid))


def done(jobs) -> bool:
    return Job.objects.filter(pk__in=[j.id for j in jobs], state="done").count() == len(
        jobs
    )


def stop(worker) -> None:
    worker.send(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, worker.output


def test_it_grows_under_a_backlog_and_shrinks_back_to_min(start_worker):
    jobs = [tasks.sleep.enqueue(1) for _ in range(24)]
    worker = start_worker("--concurrency", "1:4", **SETTINGS)
    wait_for(lambda: "growing to 4 children" in worker.output, timeout=30)
    wait_for(lambda: Worker.objects.filter(concurrency=4).exists(), timeout=10)
    row = Worker.objects.get()
    assert (row.min_concurrency, row.max_concurrency) == (1, 4)
    wait_for(lambda: done(jobs), timeout=60, message="the backlog drained")
    emptied = time.monotonic()
    wait_for(
        lambda: "shrinking to 1 children" in worker.output,
        timeout=15,
        message="back to MIN",
    )
    assert time.monotonic() - emptied < 2 + 5  # SCALE_DOWN_AFTER and a few looks
    assert Worker.objects.get().concurrency == 1
    # The supervisor, the zygote and one spare child: the others stopped.
    wait_for(lambda: session_processes(worker.pid) == 3, timeout=10)
    sizes = [size for way, size in changes(worker.output) if way == "growing"]
    assert sizes == sorted(sizes), worker.output
    assert max(sizes) == 4, worker.output
    stop(worker)


def test_a_steady_load_does_not_make_it_flap(start_worker):
    worker = start_worker("--concurrency", "1:8", **SETTINGS)
    wait_for(lambda: Worker.objects.exists(), timeout=30)
    jobs = []
    started = time.monotonic()
    while time.monotonic() - started < 14:  # two jobs of 1 s a second: ~2 busy
        jobs.append(tasks.sleep.enqueue(1))
        time.sleep(0.5)
    wait_for(lambda: done(jobs), timeout=30)
    seen = changes(worker.output)
    ways = [way for way, _ in seen]
    reversals = sum(1 for before, after in itertools.pairwise(ways) if before != after)
    # Flapping would turn every SCALE_DOWN_AFTER (2 s): about 7 reversals.
    assert reversals <= 2, worker.output
    assert 2 <= max(size for _, size in seen) <= 4, worker.output
    stop(worker)


def test_a_minimum_above_the_budget_is_refused_at_start(start_worker):
    # 5 passes check E015 (one worker of one child), not a minimum of three.
    worker = start_worker("--concurrency", "3:4", SCALING_BUDGET="5", **SETTINGS)
    assert worker.wait(timeout=30) == 1
    assert "below this worker's minimum" in worker.output
    assert not Worker.objects.exists()


class Sampler(threading.Thread):
    """Counts the database's connections every 20 ms, on its own connection."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[int] = []
        self.ready, self.done = threading.Event(), threading.Event()

    def run(self) -> None:
        try:
            self.seen.append(worker_connections())  # before the workers
            self.ready.set()
            while not self.done.is_set():
                self.seen.append(worker_connections())
                time.sleep(0.02)
        finally:
            connection.close()

    def __enter__(self) -> Sampler:
        self.start()
        assert self.ready.wait(timeout=10)
        return self

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.join(timeout=10)


@pytest.mark.postgres
def test_two_autoscaling_workers_stay_within_the_connection_budget(start_worker):
    budget = 14  # two workers at MIN 1: 2 x 4; room for three more slots
    jobs = [tasks.sleep.enqueue(0.5, key=f"orm{i}") for i in range(60)]
    with Sampler() as sampler:
        ours = sampler.seen[0]
        workers = [
            start_worker("--concurrency", "1:8", SCALING_BUDGET=str(budget), **SETTINGS)
            for _ in range(2)
        ]
        wait_for(lambda: done(jobs), timeout=90, message="the backlog drained")
    output = "".join(worker.output for worker in workers)
    assert "not growing: connection budget 14 reached" in output, output
    most = max(sampler.seen) - ours
    assert most <= budget, sampler.seen
    assert most > 2 * 4, sampler.seen  # they grew, and it was measuring
    assert sum(row.connections for row in Worker.objects.all()) <= budget
    for worker in workers:
        stop(worker)


@pytest.mark.postgres
def test_a_worker_that_does_not_fit_beside_the_fleet_is_refused(start_worker):
    first = start_worker("--concurrency", "2:4", SCALING_BUDGET="8", **SETTINGS)
    wait_for(lambda: Worker.objects.exists(), timeout=30)
    second = start_worker("--concurrency", "1:2", SCALING_BUDGET="8", **SETTINGS)
    assert second.wait(timeout=30) == 1
    assert "not starting: connection budget 8 reached (6 used by 1 other" in (
        second.output
    )
    stop(first)


@pytest.mark.postgres
def test_a_budget_above_max_connections_is_refused(start_worker):
    worker = start_worker("--concurrency", "1:4", SCALING_BUDGET="100000", **SETTINGS)
    assert worker.wait(timeout=30) == 1
    assert "above the server's max_connections" in worker.output
