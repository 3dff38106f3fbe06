"""What a worker is asked to do: its command-line options, checked.

Bad values stop the command with a one-line ``CommandError`` before anything
starts; they never surface later as a traceback.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from django.core.management.base import CommandError

from ..backend import JobsBackend, jobs_backend
from ..conf import JobsOptions
from ..sizes import cpu_seconds_problem, size_or_none

#: Jobs a lane child runs before it is replaced (what a long-lived process
#: leaks stays bounded; a fork is cheap beside them).
LANE_JOBS_PER_CHILD = 10_000


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    backend: JobsBackend
    queues: tuple[str, ...] = ()
    #: Children at start, and the fewest it keeps (MIN of MIN:MAX).
    concurrency: int = 1
    #: The most children it may grow to (MAX of MIN:MAX); equal to
    #: ``concurrency`` for a worker of fixed size.
    max_concurrency: int = 1
    jobs_per_child: int = 1
    burst: bool = False
    max_jobs: int | None = None
    poll_interval: float = 1.0
    shutdown_timeout: float = 30.0
    #: Limits for jobs whose task sets none (before OPTIONS'): bytes, seconds.
    max_memory: int | None = None
    max_cpu_seconds: float | None = None
    #: Jobs one lane child runs at once (0: not a lane worker; lane.py).
    lane: int = 0

    @property
    def child_budget(self) -> int:
        """Jobs a child runs before it is replaced: ``--jobs-per-child``, or
        for a lane child, if that is not given, ``LANE_JOBS_PER_CHILD``."""
        if self.lane and self.jobs_per_child == 1:
            return max(LANE_JOBS_PER_CHILD, self.lane)
        return self.jobs_per_child

    @property
    def skipped_queues(self) -> tuple[str, ...]:
        """Queues this worker leaves alone: a worker of every queue (no
        ``--queue``) leaves the async lane's to the workers that name them."""
        return () if self.queues else tuple(self.config.ASYNC_QUEUES)

    @property
    def config(self) -> JobsOptions:
        return self.backend.config

    @property
    def db(self) -> str:
        """The database the supervisor works on: ``WORKER_DATABASE`` (a
        direct connection, when ``DATABASE`` goes through a pooler), or the
        backend's own."""
        return self.config.WORKER_DATABASE or self.backend.db

    def __post_init__(self) -> None:
        if self.max_concurrency < self.concurrency:  # a fixed size given alone
            object.__setattr__(self, "max_concurrency", self.concurrency)

    @property
    def scales(self) -> bool:
        """Whether the worker grows and shrinks (``--concurrency MIN:MAX``)."""
        return self.max_concurrency > self.concurrency

    @classmethod
    def from_command_line(cls, options: dict[str, Any]) -> WorkerOptions:
        backend = _backend(options["backend"])
        least, most = concurrency_range(options["concurrency"])
        queues = _queues(backend, options["queue"] or ())
        lane = lane_concurrency(backend, queues, options.get("async_concurrency"))
        if lane and most > least:
            raise CommandError(
                "--concurrency MIN:MAX: a worker of the async lane has a fixed "
                "number of children (each runs many jobs): give --concurrency N."
            )
        return cls(
            backend=backend,
            queues=queues,
            lane=lane,
            concurrency=least,
            max_concurrency=most,
            jobs_per_child=_count("--jobs-per-child", options["jobs_per_child"], 1),
            burst=options["burst"],
            max_jobs=_count("--max-jobs", options["max_jobs"], None),
            poll_interval=_seconds("--poll-interval", options["poll_interval"], 1.0),
            shutdown_timeout=_seconds(
                "--shutdown-timeout", options["shutdown_timeout"], 30.0, zero_ok=True
            ),
            max_memory=size_or_none(
                options.get("max_memory"), "--max-memory", CommandError
            ),
            max_cpu_seconds=_cpu_seconds(
                "--max-cpu-seconds", options.get("max_cpu_seconds")
            ),
        )


def _backend(alias: str) -> JobsBackend:
    try:
        return jobs_backend(alias)
    except ValueError as exc:
        raise CommandError(f"--backend {exc}") from None


def _queues(backend: JobsBackend, names: Any) -> tuple[str, ...]:
    queues = tuple(dict.fromkeys(names))
    unknown = [name for name in queues if backend.queues and name not in backend.queues]
    if unknown:
        raise CommandError(
            f"--queue {unknown[0]!r} is not one of TASKS[{backend.alias!r}]['QUEUES'] "
            f"({', '.join(sorted(backend.queues))})."
        )
    return queues


def lane_concurrency(backend: JobsBackend, queues: tuple[str, ...], flag: Any) -> int:
    """How many jobs each child runs at once in this worker's async lane; 0
    for a worker of ordinary queues. The lane is the queues': a worker runs it
    when every queue it serves is in OPTIONS['ASYNC_QUEUES'] (the most any of
    them allows, or ``--async-concurrency``)."""
    lanes = backend.config.ASYNC_QUEUES
    in_lane = [name for name in queues if name in lanes]
    if flag is not None and not in_lane:
        raise CommandError(
            "--async-concurrency is for a worker of the async lane: give it "
            "--queue with queues of OPTIONS['ASYNC_QUEUES']"
            + (f" ({', '.join(sorted(lanes))})." if lanes else " (none are set).")
        )
    if not in_lane:
        return 0
    if len(in_lane) < len(queues):
        ordinary = [name for name in queues if name not in lanes]
        raise CommandError(
            f"--queue {in_lane[0]!r} is in OPTIONS['ASYNC_QUEUES'] and --queue "
            f"{ordinary[0]!r} is not: a worker runs either the async lane or "
            "ordinary jobs; start one worker for each."
        )
    if flag is not None:
        return _count("--async-concurrency", flag, None)
    return max(lanes[name] for name in in_lane)


def concurrency_range(value: Any) -> tuple[int, int]:
    """``--concurrency``: N (fixed) or MIN:MAX (autoscaling); (MIN, MAX)."""
    if value is None:
        fixed = os.cpu_count() or 1
        return fixed, fixed
    text = str(value)
    if ":" not in text:
        fixed = _count("--concurrency", value, None)
        return fixed, fixed
    least, _, most = text.partition(":")
    try:
        bounds = (_count("", least, None), _count("", most, None))
    except CommandError:
        bounds = None
    if bounds is None or None in bounds:
        raise CommandError(
            "--concurrency must be N or MIN:MAX, whole numbers of at least 1, "
            f"got {value!r}."
        ) from None
    if bounds[0] > bounds[1]:
        raise CommandError(
            f"--concurrency MIN:MAX must have MIN at most MAX, got {value!r}."
        )
    return bounds


def _count(flag: str, value: Any, default: int | None) -> int | None:
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or str(number) != str(value).strip():
        raise CommandError(
            f"{flag} must be a whole number of at least 1, got {value!r}."
        )
    return number


def _seconds(flag: str, value: Any, default: float, *, zero_ok: bool = False) -> float:
    if value is None:
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not zero_ok):
        least = "zero or more" if zero_ok else "more than zero"
        raise CommandError(
            f"{flag} must be a number of seconds ({least}), got {value!r}."
        )
    return seconds


def _cpu_seconds(flag: str, value: Any) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if problem := cpu_seconds_problem(seconds):
        raise CommandError(f"{flag}: {problem.replace(repr(seconds), repr(value))}.")
    return seconds
