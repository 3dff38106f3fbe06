"""What runs inside a job's process.

The child receives jobs from the supervisor over its socket, runs each one
and reports the outcome: a return value, an error with its traceback, or
"unrunnable" when the job does not name a ``django.tasks.Task``. It never
writes job state; it may use the ORM for the task's own work, with its own
connections, which it closes before it exits.

A child told it is a lane child (``Lane``) runs its jobs many at once in an
event loop instead, until it exits: see lane.py.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
from collections import deque
from datetime import datetime
from typing import Any

from django.db import close_old_connections, connections
from django.utils.dateparse import parse_datetime

from .. import attempts, hook_calls
from ..compat import Task, TaskResultStatus
from ..context import JobContext
from ..exceptions import ClaimLost, NotRecorded
from ..hooks import Run
from ..returns import stored_return_value
from ..task import JobResult, job_result
from ..workflows import Upstream
from . import child_connections, framing, lane, protocol, span_export, usage
from .protocol import JobSpec

_channel: _Channel | None = None


class _Channel:
    """The child's connection to its supervisor, and the jobs it was given."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = framing.Reader(sock, "supervisor", fds=True)
        #: Jobs to run, each with the pipe its output goes to (if it has one).
        self.pending: deque[tuple[JobSpec, int | None]] = deque()
        self.last = False  # no more jobs will come after the pending ones
        self.stop = False  # the supervisor asked it to stop after this job
        #: A copy of the child's own output pipe (stdout and stderr), to go
        #: back to between jobs that each print into a pipe of their own.
        self.own_output: int | None = None
        #: Databases to connect to while idle (see child_connections.py).
        self.warm: list[str] = []
        #: A lane child's orders (lane.py) and its board's file descriptor.
        self.lane: protocol.Lane | None = None
        self.board_fd: int | None = None
        #: Jobs the supervisor cancelled (lane children only), not yet acted on.
        self.cancels: deque[int] = deque()

    def accept(self, message: protocol.Message) -> protocol.Message | None:
        """Take in jobs, stop requests, a lane child's orders and its jobs'
        cancellations (lane.py acts on them); return any other message."""
        if isinstance(message, protocol.Run):
            for position, job in enumerate(message.jobs):
                # Output pipes were sent with the message, in job order.
                with_pipe = position < message.pipes and self.reader.fds
                output = self.reader.fds.popleft() if with_pipe else None
                self.pending.append((job, output))
            self.last = self.last or message.last
        elif isinstance(message, protocol.Retire):
            self.stop = True
        elif isinstance(message, protocol.Warm):
            self.warm = list(message.databases)
        elif isinstance(message, protocol.Cancel):
            self.cancels.append(message.id)
        elif isinstance(message, protocol.Lane):
            if not self.reader.fds:
                raise protocol.ProtocolError("Lane without its board")
            board = self.reader.fds.popleft()  # it came with the message
            if self.lane is None:
                self.lane, self.board_fd = message, board
            else:  # said twice: the first one holds
                os.close(board)
        else:
            return message
        return None

    def next_job(self) -> tuple[JobSpec, int | None] | None:
        """The next job to run, waiting for one if need be; None: time to exit
        (or to become a lane child)."""
        for message in self.reader.read():  # what arrived meanwhile
            self.accept(message)
        while not (self.pending or self.stop or self.last or self.lane):
            if self.warm:  # idle: the time to open what the job will need
                child_connections.open_ahead(self.warm)
                self.warm = []
            message = self.reader.read_blocking()
            if message is None:
                return None
            self.accept(message)
        if self.stop or self.reader.closed or self.lane or not self.pending:
            return None
        return self.pending.popleft()

    def request(self, message: protocol.Message) -> protocol.Reply:
        """Send ``message`` and wait for the reply, taking in jobs meanwhile."""
        framing.send(self.sock, message)
        while True:
            reply = self.reader.read_blocking()
            if reply is None:
                raise RuntimeError("the worker supervisor went away")
            if self.accept(reply) is not None:
                if not isinstance(reply, protocol.Reply):
                    raise protocol.ProtocolError(f"expected a reply, got {reply!r}")
                return reply

    # The holder of the running job's claim, for its context (context.Holder)

    def touch(self, job_id: int, seconds: float | None) -> datetime:
        reply = self.request(protocol.Touch(job_id, seconds))
        return _deadline(reply, job_id, "touch")

    def checkpoint(self, job_id: int, data: Any) -> datetime:
        reply = self.request(protocol.Checkpoint(job_id, data))
        return _deadline(reply, job_id, "checkpoint")

    def progress(self, job_id: int, report: dict[str, Any]) -> None:
        framing.send(self.sock, protocol.Progress(job_id, **report))

    def job_context(self, task: Task, job: JobSpec) -> JobContext:
        """The context a ``takes_context=True`` task gets (see
        django_jobs.context), this channel holding its claim. A method, so
        that lane.py (which child.py imports) builds it the same way."""
        return JobContext(
            task_result=running_result(task, job),
            job_id=job.id,
            queue=job.queue,
            deadline=parse_datetime(job.reserved_until),
            last_checkpoint=job.checkpoint,
            holder=self,
            upstream=Upstream(job.id, job.backend),
        )


def _deadline(reply: protocol.Reply, job_id: int, operation: str) -> datetime:
    """The new deadline a reply gives, or the reason there is none."""
    if reply.ok and reply.deadline:
        return parse_datetime(reply.deadline)
    if reply.lost:
        raise ClaimLost(job_id, operation)
    raise NotRecorded(f"job {job_id}'s {operation} was not recorded: {reply.error}")


def main(sock: socket.socket, captured: bool = False) -> None:
    """Run jobs until told to stop, out of jobs, or the supervisor is gone.

    ``captured``: stdout and stderr go to the supervisor (see output.py).
    """
    global _channel
    _channel = channel = _Channel(sock)
    if captured:
        channel.own_output = os.dup(1)
    # A job that calls os._exit still ends its hooks, and its spans leave.
    hook_calls.guard_exit(span_export.flush)
    warm_up()
    try:
        while (next_job := channel.next_job()) is not None:
            framing.send(sock, run(*next_job))
            span_export.flush()  # once its outcome is on its way
        if channel.lane is not None and not channel.reader.closed:
            lane.main(channel)
    finally:
        connections.close_all()
        flush_output()


def warm_up() -> None:
    """Walk the path a job takes before the first job arrives.

    A new child shares its memory with the zygote until it writes to it, and
    merely using an object writes (its reference count): the first job would
    pay for copying every page it touches. The child is idle now; pay here,
    but only for the path every job takes: a failure's path (formatting a
    traceback reads source files) is left to the jobs that fail.
    """
    sample = JobSpec(0, __name__ + ".run", "", "", None, [], {}, "", 0, [], *[None] * 3)
    run_message = protocol.Run(jobs=[sample])
    protocol.decode(protocol.encode(run_message), "supervisor")
    attempts.resolve(sample.task_path)
    stored_return_value({"a": [1, 2.5, None]}, "warm-up")
    protocol.encode(protocol.Outcome(0, value={"a": 1}))


def run(job: JobSpec, output: int | None = None) -> protocol.Outcome:
    """Run one job (printing into ``output``, if given); its outcome."""
    print_into(output, close=True)
    try:
        return _run(job)
    finally:
        if output is not None:  # what it prints between jobs is its own again
            print_into(_channel.own_output)
        restore_streams()


#: Python's stdout and stderr as the child started with them.
_STREAMS = {"stdout": sys.stdout, "stderr": sys.stderr}


def restore_streams() -> None:
    """Give the next job the stdout and stderr a job may have replaced or
    closed (``sys.stdout = ...``), writing to file descriptors 1 and 2."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = _STREAMS[name]
        if stream.closed:
            stream = _STREAMS[name] = open(  # noqa: SIM115  (lives as long as the child)
                fd, "w", buffering=1, closefd=False, errors="backslashreplace"
            )
        setattr(sys, name, stream)


def _run(job: JobSpec) -> protocol.Outcome:
    task = attempts.resolve(job.task_path)
    if not isinstance(task, Task):
        return protocol.Outcome.of(job.id, task, [])
    child_connections.check_opened_ahead()
    hooks = hook_calls.of_backend(job.backend)
    cpu = usage.process_cpu()
    try:
        with hooks.running(Run.of(task, job)) as ran:
            framing.send(_channel.sock, protocol.Started(job.id, ran.traceparent))
            with usage.address_space_limit(job.rlimit_as):
                ended = ran.ended = attempts.run(
                    task,
                    job.id,
                    job.args,
                    job.kwargs,
                    context=lambda: _channel.job_context(task, job),
                    workflow=job.workflow,
                )
    finally:
        used = child_connections.in_use()
        close_old_connections()
        # Before the outcome is sent: the supervisor, reading the job's pipe
        # when the outcome arrives, then has every line of it.
        flush_output()
    cpu = usage.process_cpu() - cpu
    return protocol.Outcome.of(
        job.id, ended, used, cpu=cpu, max_rss=usage.process_peak()
    )


def flush_output() -> None:
    """Flush Python's stdout and stderr, whatever the job did to them."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def print_into(fd: int | None, *, close: bool = False) -> None:
    """Point stdout and stderr (file descriptors 1 and 2) at ``fd``."""
    if fd is None:
        return
    flush_output()
    with contextlib.suppress(OSError):  # the job may have closed anything
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    if close:
        with contextlib.suppress(OSError):
            os.close(fd)


def running_result(task: Task, job: JobSpec) -> JobResult:
    """The TaskResult a task with ``takes_context`` sees while it runs."""
    return job_result(
        task,
        job.id,
        TaskResultStatus.RUNNING,
        backend=job.backend,
        args=job.args,
        kwargs=job.kwargs,
        enqueued_at=_datetime(job.enqueued_at),
        started_at=_datetime(job.started_at),
        last_attempted_at=_datetime(job.last_attempted_at),
        worker_ids=job.worker_ids,
    )


def _datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None
