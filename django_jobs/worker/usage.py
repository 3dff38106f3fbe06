"""What each attempt used: peak memory, CPU time and wall time.

Recorded for every attempt, limited or not, from the cheapest honest source:

- a job that ends in its child (returned or raised): the child's own
  ``getrusage`` when the job ends, sent in its ``Outcome``. CPU is this
  job's (user + system time of the child and of the processes it waited for,
  since the job started); peak memory is the child's ``ru_maxrss`` (or that
  of the largest process it waited for), which the kernel keeps for the
  process's life: with ``--jobs-per-child`` above 1 it is the peak of the
  jobs the child ran so far, this one included;
- a child that died with its job (a timeout, a limit, a crash): the
  zygote's ``wait4`` of it, for the child's whole life;
- and, for a job with a limit, the highest sample of its whole process tree
  (resources.py), when that is higher.

Wall time is the task's own run as the child measured it, or, for a child
that died with its job, from its start to the death the supervisor saw.
The entry is written by ``django_jobs.queue`` in the statement that records
the attempt's outcome (``Job.usage``).
"""

from __future__ import annotations

import contextlib
import resource
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..models import Job
    from .resources import Watched


def own_cpu() -> float:
    """CPU seconds of this process alone (the supervisor's, for its logs)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu() -> float:
    """CPU seconds of this process and the processes it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    waited = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + waited.ru_utime + waited.ru_stime


def process_peak() -> int:
    """Peak resident bytes of this process, or of the largest it waited for."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    waited = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, waited) * 1024  # Linux counts KiB


@contextlib.contextmanager
def address_space_limit(limit: int | None) -> Iterator[None]:
    """RLIMIT_AS at ``limit`` bytes while a job runs (if given), as it was
    after: a child that runs several jobs gives each its own."""
    if limit is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    bound = limit if hard == resource.RLIM_INFINITY else min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (bound, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def entry(
    job: Job,
    *,
    max_rss: int | None,
    cpu: float | None,
    wall: float | None,
    watched: Watched | None = None,
) -> dict[str, Any]:
    """The usage of ``job``'s current attempt, as ``Job.usage`` keeps it."""
    if watched is not None:  # the tree's samples may see more than the child
        max_rss = max(max_rss or 0, watched.peak) or None
        cpu = max(cpu or 0.0, watched.cpu) if cpu is None else cpu
    return {
        "attempt": job.attempts,
        "max_rss": max_rss,
        "cpu": None if cpu is None else round(cpu, 3),
        "wall": None if wall is None else round(wall, 3),
    }


def since(started_at: float | None) -> float | None:
    """Seconds from a monotonic ``started_at`` until now (None if unknown)."""
    return None if started_at is None else time.monotonic() - started_at
