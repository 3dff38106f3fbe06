"""A worker that grows with its backlog: ``runworker --concurrency MIN:MAX``.

The size is the number of child slots: jobs running at once (each slot has
its running child and the spare forked ahead, see claiming.py). The worker
starts at MIN; once a second the ``Scaler`` looks at it:

- it grows when every slot was busy since its last look and jobs wait: the
  last claim filled all the room it asked for, and a bounded count of the
  ready jobs of its queues due for over ``GROW_WAIT`` (one query, only
  then) says how many. A job that waits less is one a slot frees for
  shortly, not a backlog: growing for it would shrink again. It grows by
  at most half its size at a time (at least one), never beyond MAX, never
  beyond the fleet's connection budget (budget.py), never while the host has
  less than ``SCALE_MIN_FREE_MEMORY`` available (``/proc/meminfo``; where
  there is none, memory does not stop it);
- it shrinks by the slots that no job used for ``SCALE_DOWN_AFTER`` seconds:
  their idle children are told to stop (a child never stops mid-job).

The two rules are far apart (hysteresis): growing needs jobs waiting while
every slot is busy, shrinking a slot unused for a whole ``SCALE_DOWN_AFTER``
(slots just added count as used). Under a steady load the worker settles
at the most slots that load keeps busy within ``SCALE_DOWN_AFTER``, instead
of growing and shrinking every second. Each change of size, and each new
reason not to grow, is one INFO line.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from django.utils import timezone

from ..models import Job
from .budget import Budget, connections_at
from .children import Children
from .duty import Duty
from .options import WorkerOptions
from .shutdown import Shutdown

logger = logging.getLogger("django_jobs.worker")

#: Seconds between two looks at the size.
LOOK_INTERVAL = 1.0
#: The count of waiting jobs stops here: enough to size a step.
COUNT_CAP = 10_000
#: Seconds a ready job must have waited to count as a backlog.
GROW_WAIT = 1.0


class Scaler(Duty):
    """The worker's size (its child slots): the one writer of it."""

    interval = LOOK_INTERVAL

    def __init__(
        self,
        options: WorkerOptions,
        worker_id: str,
        children: Children,
        shutdown: Shutdown,
    ) -> None:
        super().__init__()
        self.options = options
        self.db = options.db
        self.children = children
        self.shutdown = shutdown
        self.least = options.concurrency
        self.most = options.max_concurrency
        self.down_after = options.config.SCALE_DOWN_AFTER
        self.min_free = options.config.SCALE_MIN_FREE_MEMORY
        self.budget = Budget(options, worker_id)
        #: Child slots now.
        self.size = options.concurrency
        #: When each slot (1 for the first) last had a job: a slot unused for
        #: ``down_after`` is given up.
        self.used_at = [time.monotonic()] * self.most
        #: The last claim filled its room: more jobs may be waiting.
        self.more_waiting = False
        #: Every slot was busy at some point since the last look.
        self.all_busy = False
        #: The connections the row says this worker may hold.
        self.published = connections_at(self.db, self.size)
        #: Why it last did not grow (logged once until it changes).
        self.refusal = ""

    def due_at(self) -> float | None:
        return self.next_run if self.options.scales else None

    def describe(self) -> str:
        """The size for the start line: "4", "2 (autoscaling 2:16)", or
        "2 (async lane: 100 at once each)"."""
        if self.options.lane:
            return f"{self.size} (async lane: {self.options.lane} at once each)"
        if not self.options.scales:
            return str(self.size)
        return f"{self.size} (autoscaling {self.least}:{self.most})"

    def row(self) -> dict[str, int]:
        """The worker row's fields about its size."""
        return {
            "concurrency": self.size,
            "min_concurrency": self.least,
            "max_concurrency": self.most,
            "connections": self.published,
        }

    # What the claimer tells it

    def observe(self) -> None:
        """Note the busy slots (after jobs were handed out)."""
        busy = len(self.children.busy)
        if busy:
            clock = time.monotonic()
            for slot in range(min(busy, self.most)):
                self.used_at[slot] = clock
        self.all_busy = self.all_busy or busy >= self.size

    def claimed(self, asked: int, got: int) -> None:
        self.more_waiting = got >= asked > 0
        self.observe()

    # The look

    def run_once(self) -> None:
        self.observe()
        clock = time.monotonic()
        if not self.shutdown.draining:
            if self.all_busy and self.more_waiting and self.size < self.most:
                self.grow(clock)
            elif self.size > self.least:
                self.maybe_shrink(clock)
        self.all_busy = False
        self.retire_extra()
        self.publish_connections()

    def grow(self, clock: float) -> None:
        waiting = self.waiting()
        if not waiting:
            self.more_waiting = False
            return
        step = max(1, self.size // 2)
        wanted = min(self.most, self.size + step, self.size + waiting)
        short = self.memory_short()
        if short:
            self.refuse(short)
            return
        busy = self.size
        granted, short = self.budget.grow(self.size, wanted)
        if granted > self.size:
            self.size = granted
            self.published = max(self.published, connections_at(self.db, granted))
            for slot in range(busy, granted):
                self.used_at[slot] = clock  # a new slot gets its chance
            more = "" if waiting < COUNT_CAP else "+"
            logger.info(
                "growing to %d children: %d%s job(s) waiting over %g s, all %d busy%s",
                granted,
                waiting,
                more,
                GROW_WAIT,
                busy,
                f" ({short})" if short else "",
            )
            self.refusal = ""
        if short and granted < wanted:
            self.refuse(short)

    def maybe_shrink(self, clock: float) -> None:
        recent = self.used_at[: self.size]
        since = clock - self.down_after
        used = [slot for slot, at in enumerate(recent, 1) if at > since]
        needed = max([self.least, *used])
        if needed >= self.size:
            return
        idle = min(clock - at for at in recent[needed:])
        gone = self.size - needed
        logger.info("shrinking to %d children: %d idle for %.0f s", needed, gone, idle)
        self.size = needed
        self.budget.publish(self.size, self.reserved())
        self.refusal = ""

    def refuse(self, reason: str) -> None:
        if reason != self.refusal:
            logger.info("not growing: %s", reason)
            self.refusal = reason

    # Measures

    def waiting(self) -> int:
        """Ready jobs of this worker's queues due for over ``GROW_WAIT``,
        counted up to ``COUNT_CAP``."""
        due = timezone.now() - timedelta(seconds=GROW_WAIT)
        jobs = (
            Job.objects.using(self.db)
            .ready(due)
            .filter(backend=self.options.backend.alias)
        )
        if self.options.queues:
            jobs = jobs.filter(queue__in=self.options.queues)
        return jobs.values("pk")[:COUNT_CAP].count()

    def memory_short(self) -> str:
        """Why memory stops growth now ("" if it does not)."""
        if not self.min_free:
            return ""
        available = available_memory()
        if available is None or available >= self.min_free:
            return ""
        return (
            f"{available // 2**20} MiB of memory available, below "
            f"SCALE_MIN_FREE_MEMORY ({self.min_free // 2**20} MiB)"
        )

    def reserved(self) -> int:
        """Slots whose connections may be open: more than the size while the
        children a shrink stopped are still exiting (two per slot)."""
        alive = len(self.children.by_pid) + len(self.children.pending)
        return max(self.size, alive // 2)

    # Keeping the children and the row in step

    def retire_extra(self) -> None:
        """Tell idle children beyond the size to stop (they exit at once)."""
        extra = self.children.active_count() - self.size
        for idle in self.children:
            if extra <= 0:
                return
            if not idle.jobs and not idle.retiring and idle.stopping is None:
                self.children.tell_to_stop(idle)
                extra -= 1

    def publish_connections(self) -> None:
        """Lower the row's connections once a shrink's children are gone."""
        now = connections_at(self.db, self.reserved())
        if now < self.published:
            self.budget.publish(self.size, self.reserved())
            self.published = now


def available_memory() -> int | None:
    """Bytes the host can give new processes without swapping (MemAvailable);
    None where /proc/meminfo does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
