"""The async lane's rules, refused where the mistake is made (issue 23):
the setting, the tasks routed to it, the workers that run it, and the
supervisor's bookkeeping of its jobs (which attempt counts when a lane child
dies)."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from django_jobs.compat import InvalidTask, task
from django_jobs.conf import JobsOptions
from django_jobs.worker.board import Board
from django_jobs.worker.child_state import Child, Slot
from django_jobs.worker.failures import Stop
from django_jobs.worker.lanes import LaneWatch
from django_jobs.worker.options import LANE_JOBS_PER_CHILD, WorkerOptions
from tests import lane_jobs
from tests.unit.fakes import job


def sync_job(value: int) -> int:
    return value


async def async_job(value: int) -> int:
    return value


def test_async_queues_are_kept():
    options = JobsOptions.from_dict({"ASYNC_QUEUES": {"crawl": 100}})
    assert options.ASYNC_QUEUES == {"crawl": 100}
    assert (options.ASYNC_SLOW_STEP, options.ASYNC_BLOCK_LIMIT) == (0.1, 5.0)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (["crawl"], "must be a dict of queue names"),
        ({"crawl": 0}, "must be a positive integer, got 0"),
        ({"crawl": True}, "must be a positive integer, got True"),
        ({"crawl": 10_001}, "must be at most 10000"),
        ({"": 5}, "non-empty strings"),
    ],
)
def test_bad_async_queues_name_the_option(value, message):
    with pytest.raises(ImproperlyConfigured, match="ASYNC_QUEUES") as raised:
        JobsOptions.from_dict({"ASYNC_QUEUES": value})
    assert message in str(raised.value)


def test_a_sync_task_routed_to_the_lane_is_refused_at_its_task_line():
    with pytest.raises(InvalidTask, match="runs only async def tasks"):
        task(queue_name="lane")(sync_job)


def test_a_sync_task_moved_to_the_lane_is_refused_at_using():
    plain = task(sync_job)
    with pytest.raises(InvalidTask, match="queue 'lane' is in OPTIONS"):
        plain.using(queue_name="lane")


@pytest.mark.parametrize("limit", [{"max_memory": "1GB"}, {"max_cpu_seconds": 5}])
def test_a_lane_task_cannot_have_a_memory_or_cpu_limit(limit):
    with pytest.raises(InvalidTask, match="cannot be enforced for one of them"):
        lane_jobs.nap.using(**limit)


def test_an_async_task_in_the_lane_is_fine():
    assert task(queue_name="lane")(async_job).queue_name == "lane"


def _options(**given) -> WorkerOptions:
    command_line = {
        "backend": "default",
        "concurrency": "2",
        "queue": None,
        "jobs_per_child": None,
        "burst": False,
        "max_jobs": None,
        "poll_interval": None,
        "shutdown_timeout": None,
        **given,
    }
    return WorkerOptions.from_command_line(command_line)


def test_a_worker_of_lane_queues_runs_the_lane():
    options = _options(queue=["lane"])
    assert options.lane == 100
    assert options.child_budget == LANE_JOBS_PER_CHILD
    assert _options(queue=["lane"], async_concurrency="7").lane == 7
    assert _options(queue=["lane"], jobs_per_child="50").child_budget == 50
    assert _options(queue=["default"]).lane == 0
    assert _options().lane == 0  # every queue but the lane's


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"queue": ["lane", "default"]}, "start one worker for each"),
        ({"async_concurrency": "5"}, "is for a worker of the async lane"),
        ({"queue": ["lane"], "concurrency": "1:4"}, "fixed number of children"),
        ({"queue": ["lane"], "async_concurrency": "many"}, "at least 1"),
    ],
)
def test_a_lane_worker_asked_the_impossible_is_one_line(given, message):
    with pytest.raises(CommandError, match=message):
        _options(**given)


class Sent:
    """Children as a LaneWatch sees them: what it sends and stops."""

    kill_grace = 1.0

    def __init__(self) -> None:
        self.sent, self.stopped, self.busy = [], [], []

    def send(self, to, message, fds=None):
        self.sent.append(message)

    def stop(self, busy, reason, *, now=False):
        busy.stopping = busy.stopping or reason
        self.stopped.append((busy, reason, now))

    def take_jobs(self, gone):
        jobs = list(gone.jobs)
        gone.jobs.clear()
        return jobs


def _lane_child(*jobs, started=()) -> tuple[LaneWatch, Child, Sent]:
    children = Sent()
    watch = LaneWatch(children, 10, slow_step=0.1, block_limit=5)
    ours, theirs = socket.socketpair()
    theirs.close()
    child = Child(pid=123, sock=ours, lane=10)
    child.jobs.extend(jobs)
    for each in jobs:
        child.slots[each.pk] = Slot(each, deadline=0, started=each.pk in started)
    children.busy = [child]
    return watch, child, children


def test_a_crash_counts_for_the_job_holding_the_loop():
    one, two, three = job(1), job(2), job(3)
    watch, child, _ = _lane_child(one, two, three, started=(1, 2, 3))
    child.board, fd = Board.create()
    Board.attach(fd).enter(2)
    counted, back = watch.split(child)
    assert (counted, back) == ([two], [one, three])


def test_a_crash_no_job_held_counts_for_every_started_job():
    one, two, three = job(1), job(2), job(3)
    watch, child, _ = _lane_child(one, two, three, started=(1, 3))
    child.board, _fd = Board.create()
    counted, back = watch.split(child)
    assert (counted, back) == ([one, three], [two])


def test_a_job_past_its_deadline_is_cancelled_then_its_child_killed():
    one, two = job(1), job(2)
    watch, child, children = _lane_child(one, two, started=(1, 2))
    child.slots[2].deadline = 10**9  # not due
    assert watch.enforce(clock=5.0) == [one]
    assert [m.op for m in children.sent] == ["cancel"]
    assert children.sent[0].id == 1
    assert child.slots[1].stopping is Stop.TIMEOUT
    watch.enforce(clock=child.slots[1].kill_at + 0.01)
    assert children.stopped == [(child, Stop.TIMEOUT, True)]
    assert child.killed_for == 1
    counted, back = watch.split(child)
    assert (counted, back) == ([one], [two])
