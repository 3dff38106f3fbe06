"""The supervisor's view of its children: forking, dispatching, deadlines, exits."""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.utils import timezone

from ..models import Job
from . import child, protocol, zygote
from .process import kill_group

logger = logging.getLogger("django_jobs.worker")


@dataclass(eq=False)
class Child:
    pid: int
    sock: socket.socket
    reader: protocol.Reader = field(init=False)
    job: Job | None = None
    jobs_run: int = 0
    #: Was given its last job (or told to exit); a replacement is on its way.
    retiring: bool = False
    #: Monotonic time by which the job must be finished.
    deadline: float = 0.0
    #: Why the supervisor is stopping it ("timeout", "shutdown"), if it is.
    stopping: str | None = None
    kill_at: float | None = None
    outcome: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.sock.setblocking(False)
        self.reader = protocol.Reader(self.sock)

    @property
    def idle(self) -> bool:
        return self.job is None and not self.retiring and not self.reader.closed


class Children:
    """Every child of this worker, and the zygote they are forked from."""

    def __init__(self, jobs_per_child: int, kill_grace: float) -> None:
        self.jobs_per_child = jobs_per_child
        self.kill_grace = kill_grace
        self.by_pid: dict[int, Child] = {}
        self.by_fd: dict[int, Child] = {}
        self.pending: dict[int, socket.socket] = {}  # fork request id -> our end
        self.zygote: zygote.ZygoteHandle | None = None

    def start_zygote(self) -> None:
        self.zygote = zygote.start(child.main)

    # Population

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.by_pid.values()))

    @property
    def busy(self) -> list[Child]:
        return [c for c in self.by_pid.values() if c.job is not None]

    @property
    def idle(self) -> list[Child]:
        return [c for c in self.by_pid.values() if c.idle]

    def active_count(self) -> int:
        """Children that are or will be able to take a job."""
        alive = sum(1 for c in self.by_pid.values() if not c.retiring)
        return alive + len(self.pending)

    def fork(self) -> None:
        request, sock = self.zygote.fork()
        self.pending[request] = sock

    def forked(self, request: int, pid: int) -> Child:
        new = Child(pid=pid, sock=self.pending.pop(request))
        self.by_pid[pid] = new
        self.by_fd[new.sock.fileno()] = new
        return new

    def remove(self, gone: Child) -> None:
        self.by_pid.pop(gone.pid, None)
        self.by_fd.pop(gone.sock.fileno(), None)
        gone.sock.close()

    # Jobs

    def dispatch(self, to: Child, job: Job) -> None:
        """Hand ``job`` to an idle child; its deadline is the reservation's."""
        to.job = job
        to.outcome = None
        to.deadline = (
            time.monotonic() + (job.reserved_until - timezone.now()).total_seconds()
        )
        last = to.jobs_run + 1 >= self.jobs_per_child
        to.retiring = last
        protocol.send(to.sock, {"op": "run", "job": job_message(job), "last": last})

    def retire_idle(self) -> None:
        """Tell idle children to exit (shutdown): they close on end of input."""
        for idle in self.idle:
            idle.retiring = True
            with contextlib.suppress(OSError):
                idle.sock.shutdown(socket.SHUT_WR)

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

    def close(self) -> None:
        """Kill every child that is left and let the zygote go."""
        for remaining in self:
            kill_group(remaining.pid, signal.SIGKILL)
            self.remove(remaining)
        for sock in self.pending.values():
            sock.close()
        self.pending.clear()
        if self.zygote is not None:
            self.zygote.close()


def job_message(job: Job) -> dict[str, Any]:
    """What a child needs to run ``job`` (and to build its TaskResult)."""

    def iso(value):
        return value.isoformat() if value else None

    return {
        "id": job.pk,
        "task_path": job.task_path,
        "args": job.args,
        "kwargs": job.kwargs,
        "backend": job.backend,
        "attempts": job.attempts,
        "worker_ids": job.worker_ids,
        "enqueued_at": iso(job.enqueued_at),
        "started_at": iso(job.started_at),
        "last_attempted_at": iso(job.last_attempted_at),
    }
