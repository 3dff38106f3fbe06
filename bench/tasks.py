"""Tasks the benchmarks enqueue."""

import time

from django.tasks import task


@task
def noop(i: int = 0) -> None:
    return None


@task
def started_at() -> float:
    """Return the wall-clock time at which the job started (for latency)."""
    return time.time()
