"""The worker's plain objects, without processes or a database."""

from __future__ import annotations

import selectors
import signal
import socket
import time
from collections import deque
from datetime import timedelta
from types import SimpleNamespace

import pytest

from django_jobs.attempts import Kind, Next, follows
from django_jobs.worker import children as children_module
from django_jobs.worker import shutdown as shutdown_module
from django_jobs.worker.child_state import lease_deadline
from django_jobs.worker.children import Child, Children
from django_jobs.worker.failures import Failure, Stop
from django_jobs.worker.portions import Portions
from django_jobs.worker.shutdown import Shutdown
from django_jobs.worker.zygote import Forking
from tests.unit.fakes import job


@pytest.fixture
def pool():
    """Children of no real process: sockets whose other end the test holds."""
    selector = selectors.DefaultSelector()
    made = Children(jobs_per_child=3, kill_grace=1, selector=selector)
    ends = []

    def add(pid: int) -> Child:
        ours, theirs = socket.socketpair()
        ends.append(theirs)
        made.pending[pid] = Forking(pid, ours, output=None, stop_pipe=None)
        return made.forked(pid, pid)

    made.add = add
    yield made
    for end in ends:
        end.close()
    for each in made:
        made.remove(each)


# Portions


def test_a_portion_is_one_job_until_jobs_are_known_to_be_quick():
    assert Portions(jobs_per_child=1).size() == 1
    portions = Portions(jobs_per_child=100)
    assert portions.size() == 1
    portions.observe(0.001)
    assert portions.size() == 20  # 20 ms of expected work
    portions.observe(0.0)
    for _ in range(50):
        portions.observe(0.00001)
    assert portions.size() == Portions.MAX_PORTION


def test_slow_jobs_bring_the_portion_back_to_one():
    portions = Portions(jobs_per_child=10)
    portions.observe(0.001)
    for _ in range(30):
        portions.observe(1.0)
    assert portions.size() == 1


# Children


def test_room_follows_the_portion_and_the_budget(pool):
    child = pool.add(101)
    assert pool.room(child, portion=2) == 2
    pool.dispatch(child, [job(1), job(2)])
    assert pool.room(child, portion=2) == 0
    pool.finish_head(child)
    assert pool.room(child, portion=5) == 1  # 2 of its 3 jobs given: 1 left
    assert child.retiring is False
    pool.dispatch(child, [job(3)])
    assert child.retiring  # its budget of 3 is spent
    assert pool.room(child, portion=5) == 0


def test_dispatch_sends_the_jobs_and_the_head_sets_the_deadline(pool):
    child = pool.add(102)
    first, second = job(1, ttr=10), job(2, ttr=100)
    pool.dispatch(child, [first, second])
    assert child.job is first
    assert child.deadline == pytest.approx(lease_deadline(first), 1)
    assert list(pool.waiting()) == [first, second]  # nothing started yet
    child.head_started()
    assert list(pool.waiting()) == [second]
    assert pool.finish_head(child) is first
    assert child.job is second
    assert pool.jobs_in_hand() == 1


def test_a_childs_deadline_follows_its_head_and_its_lease(pool):
    child = pool.add(104)
    first, second = job(1, ttr=10), job(2, ttr=100)
    pool.dispatch(child, [first, second])
    child.head_started()
    first.reserved_until += timedelta(seconds=50)  # a touch was written
    child.follow_lease()
    assert child.deadline == pytest.approx(lease_deadline(first), 1)
    assert (child.started, child.deadline) == (
        True,
        pytest.approx(time.monotonic() + 60, 1),
    )
    pool.finish_head(child)  # the next head has not started; its lease counts
    assert (child.started, child.deadline) == (
        False,
        pytest.approx(lease_deadline(second), 1),
    )
    pool.finish_head(child)
    assert (child.jobs, child.started) == (deque(), False)


def test_a_child_past_its_deadline_is_stopped_then_killed(pool, monkeypatch):
    sent = []
    monkeypatch.setattr(
        children_module, "kill_group", lambda pid, sig: sent.append(sig)
    )
    child = pool.add(103)
    pool.dispatch(child, [job(1)])
    late = child.deadline + 1
    assert pool.enforce_deadlines(late) == [child]
    assert (child.stopping, sent) == (Stop.TIMEOUT, [signal.SIGTERM])
    assert pool.next_deadline() == child.kill_at
    pool.enforce_deadlines(child.kill_at + 0.1)
    assert sent == [signal.SIGTERM, signal.SIGKILL]


# Shutdown


def test_a_first_signal_drains_a_second_stops_now(pool, monkeypatch):
    armed = []
    monkeypatch.setattr(
        shutdown_module.signal, "setitimer", lambda w, s: armed.append(s)
    )
    stopped = []
    monkeypatch.setattr(
        pool, "stop", lambda c, why, now=False: stopped.append((c.pid, why, now))
    )
    options = SimpleNamespace(
        shutdown_timeout=5.0, config=SimpleNamespace(KILL_GRACE=1)
    )
    shutdown = Shutdown(options, pool)
    child = pool.add(104)
    pool.dispatch(child, [job(1)])

    shutdown.begin(signal.SIGTERM)
    assert (shutdown.draining, shutdown.stop_now, armed) == (True, False, [7.0])
    shutdown.drain(clock=100.0)
    assert child.retiring
    assert stopped == []  # it may finish
    shutdown.drain(clock=106.0)  # past the shutdown timeout
    assert stopped == [(104, Stop.SHUTDOWN, False)]

    shutdown.begin(signal.SIGINT)
    assert shutdown.stop_now
    shutdown.drain(clock=106.5)
    assert stopped[-1] == (104, Stop.SHUTDOWN, True)


# Failures


def test_what_each_kind_of_failure_means():
    assert {kind: follows(kind, import_grace_over=False) for kind in Kind} == {
        Kind.RAISED: Next.RETRY,
        Kind.TIMED_OUT: Next.RETRY,
        Kind.CRASHED: Next.RETRY,
        Kind.OVER_LIMIT: Next.RETRY,
        Kind.CANCELLED: Next.BURY,
        Kind.NOT_A_TASK: Next.BURY,
        Kind.NOT_IMPORTABLE: Next.WAIT_FOR_DEPLOY,
        Kind.UNSTORABLE: Next.BURY,
    }
    assert follows(Kind.NOT_IMPORTABLE, import_grace_over=True) is Next.BURY
    assert {kind for kind in Kind if not kind.attempted} == {
        Kind.NOT_A_TASK,
        Kind.NOT_IMPORTABLE,
    }
    raised = Failure(job(1), Kind.RAISED, "builtins.ValueError", "T\nValueError: x\n")
    assert raised.describe() == "failed"
    assert raised.summary() == "ValueError: x"
    timed = Failure(
        job(1), Kind.CRASHED, "p", "ChildCrashed: ...\n", "exit code 3", 0.5
    )
    assert timed.describe() == "crashed (exit code 3) after 500.0 ms"


def test_a_fork_server_gone_is_no_crash(pool):
    from django_jobs.worker.zygote import ZygoteHandle

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    theirs.close()  # the zygote died
    pool.zygote = ZygoteHandle(ours, pid=0)
    assert pool.fork() is False
    assert pool.pending == {}
    ours.close()
