"""A child as the supervisor sees it: its jobs, its deadline, its stop.

``Children`` (children.py) forks, feeds and stops children; a ``Child``
holds what is known of one. Each field has one writer: the child's head,
its start and its deadline are the ``Child``'s own (``new_head``,
``head_started``, ``follow_lease``); every other field is written by
``Children`` (why it is stopped by ``Children.stop``). A lane child (lane.py)
runs its jobs at once: each has a ``Slot`` with its own deadline and stop,
written by ``Children`` and ``LaneWatch`` (lanes.py).
"""

from __future__ import annotations

import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.utils import timezone

from ..models import Job
from . import framing
from .failures import Stop

if TYPE_CHECKING:
    from .board import Board
    from .resources import Exceeded


def lease_deadline(job: Job) -> float:
    """The monotonic time at which ``job``'s reservation runs out."""
    return time.monotonic() + (job.reserved_until - timezone.now()).total_seconds()


@dataclass(eq=False)
class Slot:
    """One job of a lane child: they run at once, each on its own lease."""

    job: Job
    #: Monotonic time by which it must be finished (its reservation's end).
    deadline: float
    started: bool = False
    started_at: float | None = None
    #: Why the supervisor cancelled it (a Cancel was sent), if it did.
    stopping: Stop | None = None
    #: When its child is killed if it has not ended by then.
    kill_at: float | None = None

    def follow_lease(self) -> None:
        self.deadline = lease_deadline(self.job)


@dataclass(eq=False)
class Child:
    pid: int
    sock: socket.socket
    reader: framing.Reader = field(init=False)
    #: Jobs given to the child and not finished, in the order it runs them.
    jobs: deque[Job] = field(default_factory=deque)
    #: Whether the head of the queue reported that it started.
    started: bool = False
    #: Jobs given to this child so far, against its --jobs-per-child budget.
    assigned: int = 0
    #: Will take no more jobs (budget spent, or told to stop).
    retiring: bool = False
    #: Monotonic time by which the head must be finished.
    deadline: float = 0.0
    #: Why the supervisor is stopping it, if it is.
    stopping: Stop | None = None
    #: What it did wrong, for the error of its job (a protocol breach).
    problem: str = ""
    #: The limit its job went over, for the error of its job.
    over_limit: Exceeded | None = None
    #: Monotonic time at which its head started (its wall time, if it dies).
    started_at: float | None = None
    kill_at: float | None = None
    #: What the child has not taken yet, each part with the file descriptors
    #: that go with its first byte: the supervisor never blocks on a child.
    outbox: deque[tuple[bytearray, list[int]]] = field(default_factory=deque)
    #: The write end of its stop pipe: closed right before the supervisor
    #: signals it, so that it tells our SIGTERM from a process manager's
    #: (see process.obey_only_the_supervisor).
    stop_pipe: int | None = None
    #: Jobs it runs at once in its async lane (0: one at a time; lane.py).
    lane: int = 0
    #: Which of its jobs holds its event loop (a lane child's; board.py).
    board: Board | None = None
    #: A lane child's jobs by id, each with its own deadline.
    slots: dict[int, Slot] = field(default_factory=dict)
    #: The lane job it was killed for (it ignored its cancellation).
    killed_for: int | None = None

    def __post_init__(self) -> None:
        self.reader = framing.Reader(self.sock, "child")

    @property
    def job(self) -> Job | None:
        """The job the child is running, or will run next."""
        return self.jobs[0] if self.jobs else None

    def new_head(self) -> None:
        """Its head changed: not started yet, due when its reservation ends."""
        self.started = False
        if self.jobs and not self.lane:
            self.follow_lease()

    def head_started(self) -> None:
        self.started = True
        self.started_at = time.monotonic()

    def follow_lease(self, job: Job | None = None) -> None:
        """A job's reservation moved (its head's, unless in a lane): its
        deadline moves with it."""
        if self.lane:
            slot = self.slots.get(job.pk) if job is not None else None
            if slot is not None and slot.stopping is None:
                slot.follow_lease()
        else:
            self.deadline = lease_deadline(self.jobs[0])
