"""Tasks of the tracing and hooks tests (tests/acceptance/test_tracing.py)."""

import logging
import os

from opentelemetry import trace

from django_jobs.compat import task

logger = logging.getLogger("tests.traced")


@task
def traced_noop() -> str:
    logger.warning("inside the job")
    return "ok"


@task
def enqueue_another() -> int:
    """Enqueue a job from a job: the trace goes on."""
    with trace.get_tracer("tests").start_as_current_span("inside the job"):
        pass
    return int(traced_noop.enqueue().id)


@task(max_attempts=2)
def always_fails() -> None:
    raise ValueError("broken on purpose")


@task(max_attempts=1)
def exits_hard() -> None:
    os._exit(3)
