"""What the supervisor hands a child with a job, and the time it keeps for it.

``lease_deadline`` is the monotonic time by which the job's reservation runs
out (the supervisor stops the child then); ``job_message`` is what the child
needs to run the job and to build its TaskResult.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from ..models import Job


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
