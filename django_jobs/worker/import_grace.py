"""How long a job whose task does not import here waits for a deploy.

A deploy may reach the web servers, which enqueue, before the workers: a
job whose task path does not import yet is tried again, uncounted, until
``IMPORT_GRACE`` is over, then buried (``Recorder`` writes it). The waits
are read from the job's own errors, so that they survive a worker restart.
"""

from __future__ import annotations

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..exceptions import TaskNotImportable, class_path
from ..models import Job

#: The waits between the tries of a job whose task does not import yet: the
#: first after a second, then doubling, at most a minute apart, so that the
#: job runs soon after a deploy lands. Not RETRY_BACKOFF: that spaces failed
#: runs of a task, and nothing ran here.
IMPORT_RETRY_FIRST = 1.0
IMPORT_RETRY_MAX = 60.0


def import_failing_for(job: Job) -> float:
    """Seconds since this job's task first failed to import (0: just now)."""
    firsts = [
        e.get("at")
        for e in (job.errors if isinstance(job.errors, list) else [])
        if isinstance(e, dict)
        and e.get("exception_class_path") == class_path(TaskNotImportable)
    ]
    moments = [at for at in (parse_datetime(a) for a in firsts if a) if at]
    if not moments:
        return 0.0
    return max(0.0, (timezone.now() - min(moments)).total_seconds())


def import_tries(job: Job) -> int:
    """How many times this job's task failed to import already."""
    errors = job.errors if isinstance(job.errors, list) else []
    path = class_path(TaskNotImportable)
    return sum(
        1
        for e in errors
        if isinstance(e, dict) and e.get("exception_class_path") == path
    )


def next_try_in(job: Job, grace: float, waited: float) -> float:
    """Seconds until the job's next try, within what is left of ``grace``."""
    return min(
        IMPORT_RETRY_MAX,
        IMPORT_RETRY_FIRST * 2 ** min(import_tries(job), 16),
        grace - waited,
    )
