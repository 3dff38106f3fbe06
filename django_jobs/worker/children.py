"""The supervisor's view of its children: forking, handing out jobs, deadlines.

Each child has a queue of the jobs it was given, in order. Its head is the
job it runs (or is about to run); by default the queue holds one job at a
time. With ``--jobs-per-child N`` a child may be given a short batch (see
``batching.py``) and runs it back to back, reporting each job's start and
outcome as it goes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from ..models import Job
from . import child, protocol, zygote
from .output import OutputPipe
from .process import kill_group

logger = logging.getLogger("django_jobs.worker")


@dataclass(eq=False)
class Child:
    pid: int
    sock: socket.socket
    reader: protocol.Reader = field(init=False)
    #: Jobs given to the child and not finished, in the order it runs them.
    queue: deque[Job] = field(default_factory=deque)
    #: Whether the head of the queue reported that it started.
    started: bool = False
    #: Jobs given to this child so far, against its --jobs-per-child budget.
    assigned: int = 0
    #: Will take no more jobs (budget spent, or told to stop).
    retiring: bool = False
    #: Monotonic time by which the head must be finished.
    deadline: float = 0.0
    #: Why the supervisor is stopping it ("timeout", "shutdown"), if it is.
    stopping: str | None = None
    kill_at: float | None = None
    #: Bytes not yet taken by the child: the supervisor never blocks on one.
    outbox: bytearray = field(default_factory=bytearray)
    #: Its stdout and stderr, when they are captured.
    output: OutputPipe | None = None

    def __post_init__(self) -> None:
        self.reader = protocol.Reader(self.sock)

    @property
    def job(self) -> Job | None:
        """The job the child is running, or will run next."""
        return self.queue[0] if self.queue else None


class Children:
    """Every child of this worker, and the zygote they are forked from."""

    def __init__(
        self,
        jobs_per_child: int,
        kill_grace: float,
        selector: selectors.BaseSelector,
        *,
        capture_output: bool = True,
        output_tail: int = 0,
    ) -> None:
        self.jobs_per_child = jobs_per_child
        self.kill_grace = kill_grace
        self.selector = selector
        self.capture_output = capture_output
        self.output_tail = output_tail
        self.by_pid: dict[int, Child] = {}
        # fork request id -> our end of its socket, and of its output pipe
        self.pending: dict[int, tuple[socket.socket, int | None]] = {}
        self.zygote: zygote.ZygoteHandle | None = None

    def start_zygote(self) -> None:
        self.zygote = zygote.start(child.main)

    # Population

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.by_pid.values()))

    @property
    def busy(self) -> list[Child]:
        return [c for c in self.by_pid.values() if c.queue]

    def jobs_in_hand(self) -> int:
        return sum(len(c.queue) for c in self.by_pid.values())

    def active_count(self) -> int:
        """Children that are or will be able to take a job."""
        alive = sum(1 for c in self.by_pid.values() if not c.retiring)
        return alive + len(self.pending)

    def fork(self) -> None:
        request, sock, output = self.zygote.fork(self.capture_output)
        self.pending[request] = (sock, output)

    def forked(self, request: int, pid: int) -> Child:
        sock, output = self.pending.pop(request)
        new = Child(pid=pid, sock=sock)
        self.by_pid[pid] = new
        self.selector.register(new.sock, selectors.EVENT_READ, new)
        if output is not None:
            new.output = OutputPipe(output, pid, self.output_tail)
            self.selector.register(new.output, selectors.EVENT_READ, new.output)
        return new

    def read_output(self, of: Child) -> None:
        """Relay what the child printed (up to now) to the worker's logging."""
        if of.output is not None and not of.output.closed:
            of.output.read(of.queue)
            if of.output.closed:
                with contextlib.suppress(KeyError, ValueError):
                    self.selector.unregister(of.output)

    def remove(self, gone: Child) -> None:
        self.by_pid.pop(gone.pid, None)
        self.stop_listening(gone)
        gone.sock.close()
        if gone.output is not None:
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(gone.output)
            gone.output.close()

    def stop_listening(self, to: Child) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(to.sock)

    # Messages

    def send(self, to: Child, message: dict[str, Any]) -> None:
        """Send without blocking: what the child does not take now waits."""
        to.outbox += protocol.encode(message)
        self.flush(to)

    def flush(self, to: Child) -> None:
        while to.outbox:
            try:
                sent = to.sock.send(to.outbox, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the child is gone; its exit will be reported
                to.outbox.clear()
                break
            del to.outbox[:sent]
        if to.reader.closed:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if to.outbox else 0)
        with contextlib.suppress(KeyError, ValueError):
            if self.selector.get_key(to.sock).events != events:
                self.selector.modify(to.sock, events, to)

    # Jobs

    def room(self, of: Child, batch: int) -> int:
        """How many more jobs ``of`` may be given now, with batches of ``batch``."""
        if of.retiring or of.stopping or of.reader.closed:
            return 0
        budget = self.jobs_per_child - of.assigned
        return max(0, min(batch - len(of.queue), budget))

    def dispatch(self, to: Child, jobs: list[Job]) -> None:
        """Append ``jobs`` to a child's queue and send them to it."""
        if not to.queue:
            to.started = False
            to.deadline = lease_deadline(jobs[0])
        to.queue.extend(jobs)
        to.assigned += len(jobs)
        to.retiring = to.assigned >= self.jobs_per_child
        self.send(
            to,
            {"op": "run", "jobs": [job_message(j) for j in jobs], "last": to.retiring},
        )

    def finish_head(self, of: Child) -> Job:
        """The head's outcome arrived: drop it; the next job becomes the head."""
        job = of.queue.popleft()
        of.started = False
        if of.queue:
            of.deadline = lease_deadline(of.queue[0])
        return job

    def tell_to_stop(self, of: Child) -> None:
        """Shutdown: no more jobs; the child exits after its current one."""
        of.retiring = True
        self.send(of, {"op": "stop"})

    def stop(self, busy: Child, reason: str, *, now: bool = False) -> None:
        """Stop a busy child's whole process group: SIGTERM, then SIGKILL."""
        if busy.stopping is None:
            busy.stopping = reason
        if now:
            kill_group(busy.pid, signal.SIGKILL)
            busy.kill_at = None
        elif busy.kill_at is None:
            kill_group(busy.pid, signal.SIGTERM)
            busy.kill_at = time.monotonic() + self.kill_grace

    def enforce_deadlines(self, clock: float) -> list[Child]:
        """Stop children past their deadline; return those newly timed out."""
        timed_out = []
        for busy in self.busy:
            if busy.kill_at is not None and clock >= busy.kill_at:
                kill_group(busy.pid, signal.SIGKILL)
                busy.kill_at = None
            elif busy.stopping is None and clock >= busy.deadline:
                self.stop(busy, "timeout")
                timed_out.append(busy)
        return timed_out

    def next_deadline(self) -> float | None:
        times = [
            c.kill_at if c.kill_at is not None else c.deadline
            for c in self.busy
            if c.kill_at is not None or c.stopping is None
        ]
        return min(times, default=None)

    def waiting(self) -> Iterator[Job]:
        """Jobs given to a child that have not started yet."""
        for of in self.by_pid.values():
            for position, job in enumerate(of.queue):
                if position > 0 or not of.started:
                    yield job

    def close(self) -> None:
        """Kill every child that is left and let the zygote go."""
        for remaining in self:
            kill_group(remaining.pid, signal.SIGKILL)
            self.remove(remaining)
        for sock, output in self.pending.values():
            sock.close()
            if output is not None:
                os.close(output)
        self.pending.clear()
        if self.zygote is not None:
            self.zygote.close()


def lease_deadline(job: Job) -> float:
    """The monotonic time at which ``job``'s reservation runs out."""
    return time.monotonic() + (job.reserved_until - timezone.now()).total_seconds()


def job_message(job: Job) -> dict[str, Any]:
    """What a child needs to run ``job`` (and to build its TaskResult)."""

    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": job.pk,
        "task_path": job.task_path,
        "queue": job.queue,
        "reserved_until": iso(job.reserved_until),
        "checkpoint": job.checkpoint,
        "args": job.args,
        "kwargs": job.kwargs,
        "backend": job.backend,
        "attempts": job.attempts,
        "worker_ids": job.worker_ids,
        "enqueued_at": iso(job.enqueued_at),
        "started_at": iso(job.started_at),
        "last_attempted_at": iso(job.last_attempted_at),
    }
