"""The async lane's child (worker/lane.py): many async jobs in one event loop.

Each test starts a child (``child.main``, in a fresh interpreter as the fork
server's children are: no thread and no connection of the test's process
in it) and plays its supervisor over a socket pair: ``Lane`` with the board,
``Run`` with a pipe per job, ``Cancel``, ``Reply``, ``Retire``.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from django_jobs.attempts import Kind
from django_jobs.worker import framing, protocol
from django_jobs.worker.board import Board
from django_jobs.worker.protocol import JobSpec

ROOT = Path(__file__).resolve().parents[2]
NOW = "2026-12-06T07:00:00+00:00"
#: Longest wait for anything from the child (its start included).
TIMEOUT = 30

SCRIPT = """
import logging, socket, sys
import django

django.setup()
# A console handler made before the lane starts, as a project's LOGGING makes.
logging.basicConfig(stream=sys.stderr, format="%(name)s: %(message)s")
from django_jobs.worker import child

child.main(socket.socket(fileno=int(sys.argv[1])))
"""


def job(job_id: int, name: str, *args, queue: str = "crawl") -> JobSpec:
    return JobSpec(
        id=job_id,
        task_path=f"tests.lane_tasks.{name}",
        queue=queue,
        reserved_until=NOW,
        checkpoint=None,
        args=list(args),
        kwargs={},
        backend="default",
        attempts=1,
        worker_ids=["w1"],
        enqueued_at=NOW,
        started_at=NOW,
        last_attempted_at=NOW,
    )


class Supervisor:
    """The supervisor's end of one lane child."""

    def __init__(self, tmp_path: Path, concurrency: int, slow_step: float) -> None:
        self.sock, theirs = socket.socketpair()
        self.own_output = tmp_path / "child.out"
        with self.own_output.open("wb") as own:
            self.process = subprocess.Popen(
                [sys.executable, "-c", SCRIPT, str(theirs.fileno())],
                cwd=ROOT,
                pass_fds=[theirs.fileno()],
                stdout=own,
                stderr=subprocess.STDOUT,
                env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
            )
        theirs.close()
        self.reader = framing.Reader(self.sock, "child")
        self.board, board_fd = Board.create()
        lane = protocol.Lane(concurrency=concurrency, slow_step=slow_step)
        self.send(lane, fds=[board_fd])
        os.close(board_fd)
        #: Every message received, in order, and those ``until`` returned.
        self.log: list[protocol.Message] = []
        self.taken: set[int] = set()
        #: The read end of each job's output pipe.
        self.pipes: dict[int, int] = {}

    def send(self, message: protocol.Message, fds: list[int] = ()) -> None:
        socket.send_fds(self.sock, [protocol.encode(message)], list(fds))

    def run(self, *jobs: JobSpec, last: bool = False) -> None:
        ends = []
        for spec in jobs:
            read_end, write_end = os.pipe()
            self.pipes[spec.id] = read_end
            ends.append(write_end)
        self.send(protocol.Run(list(jobs), last=last, pipes=len(jobs)), fds=ends)
        for end in ends:  # the child has its own copies
            os.close(end)

    def receive(self, deadline: float) -> None:
        """Wait for more messages, into ``log``."""
        while not (messages := self.reader.read()):
            left = deadline - time.monotonic()
            if left <= 0 or self.reader.closed:
                raise AssertionError(
                    f"no more from the lane child; got {self.log}; it printed:\n"
                    + self.own_output.read_text(errors="replace")
                )
            select.select([self.sock], [], [], left)
        self.log.extend(messages)

    def until(self, what, timeout: float = TIMEOUT) -> protocol.Message:
        """The first message not taken yet that ``what(message)`` holds for."""
        deadline, looked = time.monotonic() + timeout, 0
        while True:
            for position in range(looked, len(self.log)):
                message = self.log[position]
                if position not in self.taken and what(message):
                    self.taken.add(position)
                    return message
            looked = len(self.log)
            self.receive(deadline)

    def outcomes(self, ids, timeout: float = TIMEOUT) -> dict[int, protocol.Outcome]:
        found = {}
        while set(found) != set(ids):
            outcome = self.until(lambda m: isinstance(m, protocol.Outcome), timeout)
            found[outcome.id] = outcome
        return found

    def output(self, job_id: int) -> str:
        """All a job printed (its pipe is closed before its outcome is sent)."""
        fd, chunks = self.pipes.pop(job_id), []
        try:
            while select.select([fd], [], [], TIMEOUT)[0]:
                if not (data := os.read(fd, 65536)):
                    return b"".join(chunks).decode()
                chunks.append(data)
            raise AssertionError(f"job {job_id}'s pipe is still open")
        finally:
            os.close(fd)

    def exited(self, timeout: float = TIMEOUT) -> int:
        return self.process.wait(timeout=timeout)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=TIMEOUT)
        self.sock.close()
        self.board.close()
        for fd in self.pipes.values():
            os.close(fd)


@pytest.fixture
def lane(tmp_path):
    made = []

    def start(concurrency: int = 100, slow_step: float = 0.1) -> Supervisor:
        made.append(Supervisor(tmp_path, concurrency, slow_step))
        return made[-1]

    yield start
    for supervisor in made:
        supervisor.close()


def kinds(log, cls) -> list[int]:
    return [message.id for message in log if isinstance(message, cls)]


def test_jobs_that_await_run_at_once(lane):
    child = lane()
    ids = range(1, 31)
    started = time.monotonic()
    child.run(*(job(i, "nap", 0.5) for i in ids), last=True)
    outcomes = child.outcomes(ids)
    took = time.monotonic() - started

    assert all(outcome.ok and outcome.value == 0.5 for outcome in outcomes.values())
    first_outcome = next(
        n for n, m in enumerate(child.log) if isinstance(m, protocol.Outcome)
    )
    assert sorted(kinds(child.log[:first_outcome], protocol.Started)) == list(ids)
    assert took < 10  # 15 s one after the other (the child's start included)
    outcome = outcomes[1]
    assert outcome.max_rss is None
    assert outcome.databases == []
    assert 0 <= outcome.cpu < 0.5  # its steps' CPU time, not the wait
    assert child.exited() == 0  # Run(last=True): it exits after them


def test_no_more_than_its_concurrency_at_once(lane):
    child = lane(concurrency=2)
    child.run(*(job(i, "nap", 0.2) for i in (1, 2, 3)), last=True)
    child.outcomes([1, 2, 3])

    log = [m for m in child.log if not isinstance(m, protocol.Blocked)]
    first_outcome = next(
        n for n, m in enumerate(log) if isinstance(m, protocol.Outcome)
    )
    assert len(kinds(log[:first_outcome], protocol.Started)) == 2
    assert 3 in kinds(log[first_outcome:], protocol.Started)
    assert child.exited() == 0


def test_the_jobs_share_one_thread_for_the_orm(lane):
    """One connection per database per lane child, whatever its concurrency."""
    child = lane()
    child.run(*(job(i, "orm_thread") for i in (1, 2, 3)), last=True)
    threads = {tuple(outcome.value) for outcome in child.outcomes([1, 2, 3]).values()}
    assert len(threads) == 1
    ((loop_thread, orm_thread),) = threads
    assert orm_thread != loop_thread
    assert child.exited() == 0


def test_a_cancel_ends_that_job_and_no_other(lane):
    child = lane()
    child.run(job(1, "wait_forever"), job(2, "nap", 0.5), job(3, "nap", 0.5))
    for _ in range(3):
        child.until(lambda m: isinstance(m, protocol.Started))
    child.send(protocol.Cancel(1))
    child.send(protocol.Cancel(99))  # no such job (its outcome crossed): ignored

    cancelled = child.until(lambda m: isinstance(m, protocol.Outcome))
    assert cancelled.id == 1
    assert cancelled.failure_kind is Kind.RAISED
    assert (
        cancelled.error["exception_class_path"] == "asyncio.exceptions.CancelledError"
    )
    assert cancelled.seconds < 0.5
    siblings = child.outcomes([2, 3])
    assert all(outcome.ok for outcome in siblings.values())

    # Cancelled as it arrives (before its first step, most likely): an
    # outcome all the same, or the supervisor would wait for it.
    child.run(job(4, "wait_forever"))
    child.send(protocol.Cancel(4))
    late = child.outcomes([4])[4]
    assert late.error["exception_class_path"] == "asyncio.exceptions.CancelledError"
    assert child.output(4) == ""  # its pipe closed all the same

    child.send(protocol.Retire())
    assert child.exited() == 0


def test_a_sync_task_is_refused_with_what_to_do(lane):
    child = lane()
    child.run(job(1, "plain", queue="crawl"), job(2, "nap", 0), last=True)
    outcomes = child.outcomes([1, 2])

    refused = outcomes[1]
    assert refused.failure_kind is Kind.NOT_A_TASK
    # InvalidTask (django.tasks) or InvalidTaskError (the 5.2 backport)
    assert refused.error["traceback"].split(": ", 1)[1] == (
        "Task 'tests.lane_tasks.plain' (queue 'crawl') is not an "
        "async def function: the async lane runs only async def tasks. Make it "
        "async, or route it to a queue outside OPTIONS['ASYNC_QUEUES'].\n"
    )
    assert 1 not in kinds(child.log, protocol.Started)  # never called
    assert outcomes[2].ok
    assert child.exited() == 0


def test_a_job_that_blocks_the_loop_is_on_the_board_and_reported(lane):
    child = lane(slow_step=0.2)
    child.run(job(1, "nap", 0.1), job(2, "hog", 0.6), last=True)
    child.until(lambda m: isinstance(m, protocol.Started) and m.id == 2)
    # Started is sent from the step that goes on to block: read the board
    # from here, as the supervisor's watchdog does.
    deadline, seen = time.monotonic() + 0.5, []
    while time.monotonic() < deadline:
        seen.append(child.board.holder())
        if seen[-1] is not None and seen[-1][1] >= 0.2:
            break
        time.sleep(0.005)
    held = [holder for holder in seen if holder is not None]
    assert {job_id for job_id, _ in held} == {2}, seen  # the hog, only
    assert held[-1][1] >= 0.2  # for this long so far, as the board tells

    blocked = child.until(lambda m: isinstance(m, protocol.Blocked) and m.id == 2)
    assert 0.6 <= blocked.seconds < 5
    outcomes = child.outcomes([1, 2])
    assert outcomes[2].value == "done"
    assert outcomes[1].ok  # it waited for the hog, then ended
    assert child.exited() == 0
    assert child.board.holder() is None  # the child left the board as it ended


def test_a_task_the_job_spawns_that_blocks_is_reported_as_the_jobs(lane):
    child = lane(slow_step=0.2)
    child.run(job(3, "hog_in_gather", 0.5), last=True)
    blocked = child.until(lambda m: isinstance(m, protocol.Blocked))
    assert (blocked.id, blocked.seconds >= 0.5) == (3, True)
    assert child.outcomes([3])[3].value == "done"
    assert child.exited() == 0


def test_each_job_prints_and_logs_into_its_own_pipe(lane):
    child = lane()
    child.run(job(1, "chatter", "alpha", 5), job(2, "chatter", "beta", 5), last=True)
    outcomes = child.outcomes([1, 2])
    assert all(outcome.ok for outcome in outcomes.values())

    for job_id, name, other in ((1, "alpha", "beta"), (2, "beta", "alpha")):
        lines = child.output(job_id).split("\n")
        expected = []
        for number in range(5):
            expected += [
                f"{name} out {number}",
                f"tests.lane_tasks: {name} logged {number}",
                f"{name} err {number}",
            ]
        # Flushed before the outcome: the last line, without its newline, too.
        assert lines == [*expected, f"{name} no newline"]
        assert not any(other in line for line in lines)
    assert child.exited() == 0
    own = child.own_output.read_text()
    assert "alpha" not in own  # nothing went astray
    assert "beta" not in own


def test_a_touch_is_a_round_trip_and_what_comes_meanwhile_waits(lane):
    child = lane()
    child.run(job(1, "touching", 1.0))
    touch = child.until(lambda m: isinstance(m, protocol.Touch))
    assert (touch.id, touch.seconds) == (1, 30)
    # A job and a cancellation that arrive while the child waits for the
    # reply: taken in by the loop once the touch is answered (not once the
    # job that touched ends).
    child.run(job(2, "nap", 0), job(3, "wait_forever"), last=True)
    child.send(protocol.Cancel(3))
    deadline = datetime(2026, 12, 6, 8, tzinfo=UTC) + timedelta(seconds=30)
    child.send(protocol.Reply.moved(deadline))

    outcomes = child.outcomes([1, 2, 3])
    assert outcomes[1].value == deadline.isoformat()
    assert outcomes[2].ok
    assert outcomes[3].error["exception_class_path"].endswith("CancelledError")
    assert kinds(child.log, protocol.Outcome)[-1] == 1
    assert child.exited() == 0


def test_when_the_supervisor_is_gone_the_child_cancels_its_jobs_and_exits(lane):
    child = lane()
    child.run(job(1, "wait_forever"), job(2, "wait_forever"))
    child.until(lambda m: isinstance(m, protocol.Started))
    child.sock.shutdown(socket.SHUT_RDWR)
    assert child.exited(timeout=10) == 0
