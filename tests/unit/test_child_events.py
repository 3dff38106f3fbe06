"""ChildEvents, without processes or a database: what the supervisor does
when a child says something, when it dies, and when the fork server dies.

A child is a real ``Child`` on one end of a socket pair (the test holds the
other); the pool, the recorder, the leases, the claimer and the shutdown are
fakes, the claim watch and the portions are real.
"""

from __future__ import annotations

import json
import logging
import math
import signal
import socket
from collections import deque

import pytest

from django_jobs.attempts import Kind
from django_jobs.models import Job
from django_jobs.worker import protocol
from django_jobs.worker.child_state import lease_deadline
from django_jobs.worker.children import Child, Children
from django_jobs.worker.events import ChildEvents
from django_jobs.worker.failures import Failure, Stop
from django_jobs.worker.leases import LOST, Refused
from django_jobs.worker.portions import Portions
from django_jobs.worker.resources import Exceeded
from django_jobs.worker.watch import ClaimWatch
from tests.unit.fakes import Fake, job

KILLED = signal.SIGKILL  # a wait status: killed by SIGKILL
EXIT_3 = 3 << 8  # a wait status: exit code 3


class Pool(Fake):
    """The children: ``by_pid``, iterable; every method written down."""

    def __init__(self) -> None:
        super().__init__(
            finish_head=lambda of: of.jobs.popleft(),
            take_jobs=Children.take_jobs.__get__(self),
            broke_protocol=self.broke_protocol,
        )
        self.by_pid: dict[int, Child] = {}
        self.zygote = Fake()
        self.outputs = Fake()
        self.warm = Fake()
        self.preloads = Fake()
        self.resources = Fake()

    def broke_protocol(self, sender: Child, problem: str) -> None:
        Children.broke_protocol(self, sender, problem)

    def __iter__(self):
        return iter(list(self.by_pid.values()))


@pytest.fixture
def world():
    pool = Pool()
    made = ChildEvents(
        children=pool,
        recorder=Fake(),
        leases=Fake(),
        portions=Portions(jobs_per_child=1),
        claimer=Fake(),
        watch=ClaimWatch("default", pool),
        shutdown=Fake(),
    )
    made.leases.kept = {}
    ends = []

    def child(pid: int, *jobs: Job) -> Child:
        ours, theirs = socket.socketpair()
        ends.append((ours, theirs))
        made.children.by_pid[pid] = given = Child(pid, ours)
        given.jobs = deque(jobs)
        given.theirs = theirs
        return given

    made.child = child
    yield made
    for pair in ends:
        for end in pair:
            end.close()


def replies(world) -> list[protocol.Message]:
    return [message for _, message in world.children.args("send")]


def said(data: dict) -> protocol.Message:
    """``data`` as the supervisor receives it from a child."""
    return protocol.decode(json.dumps(data).encode(), "child")


# What a child says


def test_started_starts_the_heads_deadline_and_is_recorded(world):
    head = job(1, ttr=30)
    running = world.child(10, head)
    world.on_message(running, said({"op": "started", "id": 1}))
    assert running.started
    assert running.deadline == pytest.approx(lease_deadline(head), abs=1)
    assert world.leases.args("renew_if_late") == [(head,)]
    assert world.recorder.args("job_started") == [(head,)]


@pytest.mark.parametrize(
    ("watched", "reason", "now"),
    [("cancelling", Stop.CANCEL, False), ("lost", Stop.LOST, True)],
)
def test_a_job_cancelled_or_lost_is_stopped_as_it_starts(world, watched, reason, now):
    running = world.child(10, job(1))
    getattr(world.watch, watched).add(1)
    world.on_message(running, said({"op": "started", "id": 1}))
    assert world.children.args("stop") == [(running, reason)]
    assert world.children.kwargs("stop") == [{"now": True} if now else {}]
    assert world.recorder.calls == []


def test_a_touch_renews_and_replies_with_the_new_deadline(world):
    head = job(1)
    running = world.child(10, head)
    world.on_message(running, said({"op": "touch", "id": 1, "seconds": 5}))
    assert world.leases.args("renew") == [(head, 5)]
    assert replies(world) == [protocol.Reply.moved(head.reserved_until)]
    assert running.deadline == pytest.approx(lease_deadline(head), abs=1)


@pytest.mark.parametrize("seconds", [0, -1, math.inf, math.nan])
def test_a_touch_by_no_positive_number_is_refused(world, seconds):
    running = world.child(10, job(1))
    world.on_message(running, said({"op": "touch", "id": 1, "seconds": seconds}))
    assert world.leases.calls == []
    (reply,) = replies(world)
    assert not reply.ok
    assert "touch() takes seconds above 0" in reply.error


def test_a_touch_of_a_lost_claim_says_so(world):
    world.leases.returns["renew"] = LOST
    running = world.child(10, job(1))
    world.on_message(running, said({"op": "touch", "id": 1}))
    assert replies(world) == [protocol.Reply.claim_lost()]


def test_a_checkpoint_is_written_and_answered_with_why_not(world):
    head = job(1)
    running = world.child(10, head)
    world.leases.returns["checkpoint"] = Refused("the database refused it")
    world.on_message(running, said({"op": "checkpoint", "id": 1, "data": {"page": 3}}))
    assert world.leases.args("checkpoint") == [(head, {"page": 3})]
    assert replies(world) == [protocol.Reply.refused("the database refused it")]


def test_progress_goes_to_the_recorder(world):
    head = job(1)
    running = world.child(10, head)
    message = {"op": "progress", "id": 1, "done": 2, "total": 5}
    world.on_message(running, said(message))
    expected = protocol.Progress(1, done=2, total=5)
    assert world.recorder.args("progress") == [(head, expected)]


@pytest.mark.parametrize("jobs", [(), (job(2),)])
def test_a_message_about_another_job_is_logged_and_ignored(world, caplog, jobs):
    running = world.child(10, *jobs)
    world.on_message(running, said({"op": "started", "id": 1}))
    assert "child 10 sent an unexpected message" in caplog.text
    assert world.recorder.calls == []
    assert not running.started


def test_a_success_is_queued_and_frees_a_slot(world):
    head, behind = job(1), job(2)
    running = world.child(10, head, behind)
    world.children.outputs.returns["collect"] = ("printed\n", False)
    outcome = {"op": "outcome", "id": 1, "value": 7, "seconds": 0.25}
    world.on_message(running, said({**outcome, "databases": ["default"]}))
    assert list(running.jobs) == [behind]
    # the logs and what it used first
    assert world.recorder.names() == ["keep_logs", "keep_usage", "succeeded"]
    assert world.recorder.args("keep_logs") == [(head, "printed\n", False)]
    assert world.recorder.args("succeeded") == [(head, 7, 0.25)]
    assert world.children.warm.args("used") == [(["default"],)]
    assert world.portions.average == 0.25
    assert world.claimer.names() == ["wake_up"]


@pytest.mark.parametrize(
    ("reported", "kind", "seconds"),
    [
        ("RAISED", Kind.RAISED, 0.5),
        ("NOT_A_TASK", Kind.NOT_A_TASK, None),
        ("NOT_IMPORTABLE", Kind.NOT_IMPORTABLE, None),
        ("UNSTORABLE", Kind.UNSTORABLE, 0.5),
        ("TIMED_OUT", Kind.RAISED, 0.5),  # not a child's to say
        ("NONSENSE", Kind.RAISED, 0.5),
    ],
)
def test_a_failure_is_queued_with_its_kind(world, reported, kind, seconds):
    head = job(1)
    running = world.child(10, head)
    error = {"exception_class_path": "builtins.ValueError", "traceback": "tb"}
    outcome = {"op": "outcome", "id": 1, "seconds": 0.5}
    world.on_message(running, said({**outcome, "kind": reported, "error": error}))
    expected = Failure(head, kind, "builtins.ValueError", "tb", seconds=seconds)
    assert world.recorder.args("failed") == [(expected,)]


# A child that dies


@pytest.mark.parametrize(
    ("stopping", "recorded"),
    [
        (Stop.TIMEOUT, ("timed_out", 60)),
        (Stop.CANCEL, ("cancelled",)),
        (None, ("crashed", "killed by signal 9 (SIGKILL)")),
        (Stop.PROTOCOL, ("crashed", "killed by signal 9 (SIGKILL)")),
    ],
)
def test_a_child_that_dies_with_its_job_records_why(world, stopping, recorded):
    head, behind = job(1), job(2)
    running = world.child(10, head, behind)
    running.stopping = stopping
    world.on_exit(10, KILLED)
    name, *args = recorded
    assert world.recorder.args("failed") == [(getattr(Failure, name)(head, *args),)]
    assert world.recorder.args("release") == [(behind,)]  # it never started
    assert world.claimer.names() == ["wake_up"]
    assert world.children.args("remove") == [(running,)]


def test_a_crash_names_what_the_child_did_wrong(world):
    running = world.child(10, job(1))
    running.problem = "it sent the worker something that is not a message"
    world.on_exit(10, EXIT_3)
    ((failure,),) = world.recorder.args("failed")
    assert (
        failure.how == "it sent the worker something that is not a message; exit code 3"
    )


def test_a_child_stopped_for_a_shutdown_gives_its_job_back(world):
    head = job(1)
    running = world.child(10, head)
    running.stopping = Stop.SHUTDOWN
    world.leases.kept = {1: "its last checkpoint"}
    world.on_exit(10, KILLED)
    assert world.leases.names() == ["flush"]  # before the release
    assert world.recorder.names() == ["release"]


def test_a_child_whose_claim_was_lost_is_not_recorded(world, caplog):
    head, behind = job(1), job(2)
    running = world.child(10, head, behind)
    running.stopping = Stop.LOST
    world.watch.lost.update({1, 2})
    world.on_exit(10, KILLED)
    assert world.recorder.calls == []
    assert "stopped: its claim was lost" in caplog.text
    assert world.watch.lost == set()


def test_what_a_child_said_before_dying_counts(world):
    head = job(1)
    running = world.child(10, head)
    running.theirs.sendall(b'{"op":"outcome","id":1,"value":null}\n')
    running.theirs.close()
    world.on_exit(10, 0)
    assert world.recorder.args("succeeded") == [(head, None, 0.0)]
    assert world.recorder.args("failed") == []
    assert world.claimer.names() == ["wake_up"]  # for the outcome only


def test_an_idle_child_that_exits_is_only_removed(world):
    idle = world.child(10)
    world.on_exit(10, 0)
    world.on_exit(11, 0)  # not ours (any more)
    assert world.children.args("remove") == [(idle,)]
    assert world.recorder.calls == []
    assert world.claimer.calls == []


def test_a_child_that_breaks_the_protocol_is_stopped_now(world, caplog):
    head = job(1)
    running = world.child(10, head)
    running.theirs.sendall(b"this is not json\n")
    with caplog.at_level(logging.ERROR, logger="django_jobs.worker"):
        world.on_child(running)
    assert "child 10 broke the protocol" in caplog.text
    assert world.children.args("stop") == [(running, Stop.PROTOCOL)]
    assert world.children.kwargs("stop") == [{"now": True}]
    assert world.children.args("stop_listening") == [(running,)]
    assert running.problem
    world.on_exit(10, KILLED)  # the job is recorded as crashed, saying why
    ((failure,),) = world.recorder.args("failed")
    assert failure.how.startswith(running.problem)


def test_a_child_over_its_limit_fails_its_attempt_with_what_it_used(world):
    head = job(1)
    running = world.child(10, head)
    running.head_started()
    running.stopping = Stop.LIMIT
    running.over_limit = Exceeded(memory=True, used=612e6, limit=512e6)
    world.children.resources.returns["finished"] = None
    exited = protocol.Exited(10, KILLED, cpu=1.25, max_rss=700_000_000)
    world.on_exit(10, KILLED, exited)
    ((failure,),) = world.recorder.args("failed")
    assert failure.kind is Kind.OVER_LIMIT
    assert failure.traceback == (
        "MemoryLimitExceeded: used 612 MB, limit 512 MB; its processes were killed\n"
    )
    ((used,),) = [(k,) for k in world.recorder.kwargs("keep_usage")]
    assert used["max_rss"] == 700_000_000
    assert used["cpu"] == 1.25
    assert 0 <= used["wall"] < 5


# The fork server


def test_the_fork_servers_messages(world):
    world.children.zygote.returns["read"] = [
        protocol.Forked(4, 40),
        protocol.Preloaded("tests.tasks", ok=True),
        protocol.Exited(41, 0),
    ]
    gone = world.child(41)
    world.on_zygote()
    assert world.children.args("forked") == [(4, 40)]
    assert world.children.preloads.args("answered") == [("tests.tasks", True, True)]
    assert world.children.args("remove") == [(gone,)]


def test_a_dead_fork_server_ends_the_worker_and_its_jobs_attempts(world, caplog):
    world.children.zygote.returns["read"] = None
    head = job(1)
    running = world.child(10, head)
    running.stopping = Stop.SHUTDOWN  # no matter: its process died with the server
    idle = world.child(11)
    world.on_zygote()
    assert world.failed
    assert world.children.names()[0] == "forget_zygote"
    crashed = Failure.crashed(head, "the worker's fork server died")
    assert world.recorder.args("failed") == [(crashed,)]
    assert world.children.args("remove") == [(running,), (idle,)]
    assert world.shutdown.args("abort") == [("the fork server died",)]
