"""The jobs of a failover run. Each run of a job leaves marker files.

A marker is an empty file in ``$FAILOVER_MARKS``, named
``<key>.<job id>.<attempt>.<event>.<pid>``: "ran" when the run starts, then
"done" when its work is finished and it returns, or "failed" before it
raises. Files, not rows: the database is what fails over, and a lost commit
must not take the evidence of a run with it. The key (an argument, unique per
enqueue) names the job: after an asynchronous failover the promoted server
may give a lost job's id to a new one.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from django_jobs.compat import task

NAP = 0.5  # seconds a "nap" job sleeps
FLAKY_ATTEMPTS = 3


def mark(context, key: int, event: str) -> None:
    name = f"{key}.{context.job_id}.{context.attempt}.{event}.{os.getpid()}"
    Path(os.environ["FAILOVER_MARKS"], name).touch()


@task(takes_context=True, max_attempts=3)
def quick(context, key: int) -> int:
    mark(context, key, "ran")
    mark(context, key, "done")
    return key


@task(takes_context=True, max_attempts=3)
def nap(context, key: int) -> int:
    mark(context, key, "ran")
    time.sleep(NAP)
    mark(context, key, "done")
    return key


@task(takes_context=True, max_attempts=FLAKY_ATTEMPTS)
def flaky(context, key: int) -> int:
    mark(context, key, "ran")
    if context.attempt == 1:
        mark(context, key, "failed")
        raise ValueError(f"failover: job {key} fails its first attempt")
    mark(context, key, "done")
    return key


@task(takes_context=True, max_attempts=1)
def doomed(context, key: int) -> None:
    mark(context, key, "ran")
    mark(context, key, "failed")
    raise ValueError(f"failover: job {key} is buried on purpose")
