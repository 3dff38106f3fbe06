"""The memory and CPU-time limits of running jobs, and the watch that keeps them.

A job's limits are its task's own (``max_memory``, ``max_cpu_seconds``,
written on its row at enqueue), else the worker's ``--max-memory`` and
``--max-cpu-seconds``, else ``OPTIONS['MAX_MEMORY']`` and
``OPTIONS['MAX_CPU_SECONDS']``. Only children running a job with a limit are
watched: a worker whose jobs have none reads nothing.

The watch samples the resident memory and CPU time of the child's process
tree (procfs.py) every ``INTERVAL`` seconds from the job's start, and every
``CLOSE_INTERVAL`` once it is past ``CLOSE`` of a limit: a job shorter than
the first interval is never sampled, and one that grows faster than its
limit per interval can overshoot it by that much before it is stopped (the
docs say so; ``OPTIONS['MEMORY_RLIMIT']`` adds a bound the kernel keeps). A
child over its memory limit is killed at once (SIGKILL: every moment it
grows further); one over its CPU limit is stopped as a timed-out one is
(SIGTERM, then SIGKILL after ``KILL_GRACE``). Either way its job's attempt
fails, counts and follows its task's retry policy (``Kind.OVER_LIMIT``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..attempts import Kind
from ..exceptions import CPULimitExceeded, MemoryLimitExceeded, class_path
from ..sizes import format_size
from . import procfs
from .failures import Failure

if TYPE_CHECKING:
    from ..models import Job
    from .options import WorkerOptions

logger = logging.getLogger("django_jobs.worker")

INTERVAL = 0.05  # seconds between two samples of a watched child
CLOSE_INTERVAL = 0.02  # ... once it is past CLOSE of one of its limits
CLOSE = 0.75


@dataclass(frozen=True, slots=True)
class Limits:
    """What a job may use: resident bytes and CPU seconds (None: no limit)."""

    memory: int | None = None
    cpu: float | None = None

    def __bool__(self) -> bool:
        return self.memory is not None or self.cpu is not None


@dataclass(frozen=True, slots=True)
class Exceeded:
    """A job went over a limit: what it used, and the error it fails with."""

    memory: bool
    used: float
    limit: float

    def describe(self) -> str:
        if self.memory:
            return f"used {format_size(self.used)}, limit {format_size(self.limit)}"
        return f"used {self.used:.1f} s of CPU, limit {self.limit:g} s"

    def failure(self, job: Job) -> Failure:
        """The failed attempt of ``job``, whose process group was killed."""
        cls = MemoryLimitExceeded if self.memory else CPULimitExceeded
        message = f"{cls.__name__}: {self.describe()}; its processes were killed\n"
        return Failure(job, Kind.OVER_LIMIT, class_path(cls), message)


@dataclass(slots=True)
class Watched:
    """A running job that has limits, as far as its samples tell."""

    limits: Limits
    #: The tree's CPU seconds when the job started (earlier jobs of a child
    #: that runs several are not this job's).
    cpu_base: float
    next_at: float
    #: The highest resident memory sampled, bytes.
    peak: int = 0
    cpu: float = 0.0


class ResourceWatch:
    """The limits of each running job, and the samples of those that have any."""

    def __init__(self, options: WorkerOptions | None) -> None:
        config = options.config if options is not None else None
        self.memory = (options and options.max_memory) or (config and config.MAX_MEMORY)
        self.cpu = (options and options.max_cpu_seconds) or (
            config and config.MAX_CPU_SECONDS
        )
        self.rlimit = bool(config and config.MEMORY_RLIMIT)
        #: Children whose job has limits, by pid.
        self.watched: dict[int, Watched] = {}
        #: Those found over a limit, kept for their job's usage until they die.
        self.stopped: dict[int, Watched] = {}
        if (self.memory or self.cpu) and not procfs.AVAILABLE:
            logger.warning("no /proc here: memory and CPU limits are not enforced")

    def limits(self, job: Job) -> Limits:
        """The job's own limits, else the worker's, else OPTIONS'."""
        return Limits(
            job.max_memory or self.memory or None,
            job.max_cpu_seconds or self.cpu or None,
        )

    def rlimit_for(self, job: Job) -> int | None:
        """RLIMIT_AS to set in the job's process (OPTIONS['MEMORY_RLIMIT'])."""
        return self.limits(job).memory if self.rlimit else None

    def started(self, pid: int, job: Job) -> None:
        """``job`` started in child ``pid``: watch it if it has limits."""
        limits = self.limits(job)
        if not limits or not procfs.AVAILABLE:
            return
        # Only a CPU limit needs to know what the child used before the job.
        base = procfs.read_stat(pid) if limits.cpu is not None else None
        cpu = base.cpu if base is not None else 0.0
        self.watched[pid] = Watched(limits, cpu, time.monotonic() + INTERVAL)

    def finished(self, pid: int) -> Watched | None:
        """The child's job ended: its samples, and no more of them."""
        return self.watched.pop(pid, None) or self.stopped.pop(pid, None)

    def due_at(self) -> float | None:
        return min((w.next_at for w in self.watched.values()), default=None)

    def sample(self, clock: float) -> dict[int, Exceeded]:
        """When one child is due, sample them all (one scan of /proc serves
        every child, and their turns stay together: the scans per second do
        not grow with the concurrency); those over a limit, killed (the
        processes of their tree outside their group too; the group is the
        caller's to stop, as for a timeout)."""
        if not any(w.next_at <= clock for w in self.watched.values()):
            return {}
        table = procfs.scan()
        over = {}
        for pid in list(self.watched):
            members = procfs.tree(pid, table)
            exceeded = self._check(self.watched[pid], *procfs.usage(members, table))
            if exceeded is not None:
                over[pid] = exceeded
                self.stopped[pid] = self.watched.pop(pid)
                self._kill_strays(pid, members, table)
            else:
                self.watched[pid].next_at = clock + self._interval(self.watched[pid])
        return over

    def _check(self, watched: Watched, rss: int, cpu: float) -> Exceeded | None:
        watched.peak = max(watched.peak, rss)
        watched.cpu = max(0.0, cpu - watched.cpu_base)
        memory, seconds = watched.limits.memory, watched.limits.cpu
        if memory is not None and rss > memory:
            return Exceeded(memory=True, used=rss, limit=memory)
        if seconds is not None and watched.cpu > seconds:
            return Exceeded(memory=False, used=watched.cpu, limit=seconds)
        return None

    @staticmethod
    def _interval(watched: Watched) -> float:
        memory, seconds = watched.limits.memory, watched.limits.cpu
        close = (memory is not None and watched.peak > CLOSE * memory) or (
            seconds is not None and watched.cpu > CLOSE * seconds
        )
        return CLOSE_INTERVAL if close else INTERVAL

    @staticmethod
    def _kill_strays(
        pid: int, members: set[int], table: dict[int, procfs.Stat]
    ) -> None:
        """Kill the tree's processes that left the child's group (setsid):
        the group's own are stopped with it, by the caller."""
        for stray in members:
            if table[stray].pgrp != pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(stray, signal.SIGKILL)
