"""Every message of the worker's processes, through a real socket pair.

The sender encodes a message, the bytes cross a Unix socket (a stream for a
child, SEQPACKET for the fork server, as in the worker), and the receiver
decodes the same message. A message that is not one, or not one its sender
may send, is refused with a ProtocolError, never a crash.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from django_jobs.attempts import Ended, Kind
from django_jobs.worker import framing, protocol
from django_jobs.worker.protocol import JobSpec, ProtocolError

NOW = "2026-12-06T07:00:00+00:00"
SPEC = JobSpec(
    id=7,
    task_path="tests.tasks.add",
    queue="default",
    reserved_until=NOW,
    checkpoint={"page": 3},
    args=[1, "a\x00\udc80"],
    kwargs={"b": None},
    backend="default",
    attempts=1,
    worker_ids=["w1"],
    enqueued_at=NOW,
    started_at=None,
    last_attempted_at=NOW,
)

#: One of each message, as its sender builds it.
SAMPLES = {
    "run": ("supervisor", protocol.Run([SPEC, SPEC], last=True, pipes=1)),
    "retire": ("supervisor", protocol.Retire()),
    "warm": ("supervisor", protocol.Warm(["default", "other"])),
    "reply": ("supervisor", protocol.Reply.refused("the database is away")),
    "lane": ("supervisor", protocol.Lane(100, 0.1)),
    "cancel": ("supervisor", protocol.Cancel(7)),
    "blocked": ("child", protocol.Blocked(7, 0.25)),
    "started": ("child", protocol.Started(7)),
    "touch": ("child", protocol.Touch(7, 2.5)),
    "checkpoint": ("child", protocol.Checkpoint(7, {"cursor": "x\x00"})),
    "progress": ("child", protocol.Progress(7, done=1, total=3, message="1/3")),
    "outcome": (
        "child",
        protocol.Outcome.of(
            7,
            Ended(
                Kind.UNSTORABLE, error={"exception_class_path": "p", "traceback": "t"}
            ),
            ["default"],
        ),
    ),
    "fork": ("supervisor", protocol.Fork(3)),
    "preload": ("supervisor", protocol.Preload("tests.tasks")),
    "forked": ("zygote", protocol.Forked(3, 4242)),
    "exited": ("zygote", protocol.Exited(4242, 256)),
    "preloaded": ("zygote", protocol.Preloaded("tests.tasks", ok=False, why="x")),
}


def test_every_message_has_a_sample_and_one_sender():
    assert set(SAMPLES) == set(protocol.BY_OP)
    for op, (sender, message) in SAMPLES.items():
        assert message.op == op
        assert [who for who, ops in protocol.SENT_BY.items() if op in ops] == [sender]


@pytest.mark.parametrize("op", sorted(SAMPLES))
def test_both_ends_of_a_stream_socket_agree(op):
    sender, message = SAMPLES[op]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with ours, theirs:
        framing.send(ours, message)
        framing.send(ours, message)  # two in one read: split into lines
        reader = framing.Reader(theirs, sender)
        assert reader.read_blocking() == message
        assert reader.read() == [message]


@pytest.mark.parametrize("op", ["fork", "preload", "forked", "exited", "preloaded"])
def test_both_ends_of_the_fork_servers_socket_agree(op):
    sender, message = SAMPLES[op]
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with ours, theirs:
        ours.send(protocol.encode(message))
        assert protocol.decode(theirs.recv(65536), sender) == message


def test_a_run_message_brings_its_jobs_output_pipes_in_order():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    read_end, write_end = os.pipe()
    try:
        with ours, theirs:
            run = protocol.Run([SPEC, SPEC], pipes=1)
            socket.send_fds(ours, [protocol.encode(run)], [write_end])
            reader = framing.Reader(theirs, "supervisor", fds=True)
            assert reader.read_blocking() == run
            (received,) = reader.fds
            os.write(received, b"printed")
            os.close(received)
            assert os.read(read_end, 100) == b"printed"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_an_outcome_says_how_its_job_ended():
    done = protocol.Outcome.of(7, Ended(None, value=[1]), [])
    assert done.ok
    assert done.value == [1]
    failed = SAMPLES["outcome"][1]
    assert not failed.ok
    assert failed.failure_kind is Kind.UNSTORABLE
    # A child cannot say its job timed out: that is the supervisor's to tell.
    assert protocol.Outcome(7, kind="TIMED_OUT").failure_kind is Kind.RAISED


@pytest.mark.parametrize(
    ("line", "sender", "says"),
    [
        (b"this is not a message", "child", "not a message"),
        (b"[1, 2]", "child", "not a message"),
        (b'{"op": "dance"}', "child", "not a message"),
        (b'{"op": "run", "jobs": []}', "child", "a child does not send 'run'"),
        (b'{"op": "outcome", "id": 7}', "supervisor", "does not send 'outcome'"),
        (b'{"op": "started"}', "child", "Started without id"),
        (b'{"op": "started", "id": "7"}', "child", "Started.id cannot be str"),
        (b'{"op": "touch", "id": 7, "seconds": "5"}', "child", "Touch.seconds"),
        (b'{"op": "run", "jobs": [1]}', "supervisor", "not a job"),
        (b'{"op": "run", "jobs": [{"id": 1}]}', "supervisor", "JobSpec without"),
        (b'{"op": "forked", "id": 1, "pid": null}', "zygote", "Forked.pid"),
        (b"[" * 100_000, "child", "not a message"),
    ],
)
def test_what_is_no_message_is_refused(line, sender, says):
    with pytest.raises(ProtocolError, match=says):
        protocol.decode(line, sender)


def test_unknown_fields_are_left_out():
    line = json.dumps({"op": "started", "id": 7, "later": 1}).encode()
    assert protocol.decode(line, "child") == protocol.Started(7)
