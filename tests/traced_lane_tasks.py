"""Async tasks of the lane's queue for the tracing tests
(tests/acceptance/test_lane_tracing.py)."""

import asyncio
import logging
import os

from opentelemetry import trace

from django_jobs.compat import task

logger = logging.getLogger("tests.traced_lane")
tracer = trace.get_tracer("tests")


@task(queue_name="lane")
async def traced_nap(key: str, seconds: float = 0.3) -> str:
    """A span of its own, open across awaits while its siblings run."""
    with tracer.start_as_current_span(f"inside {key}"):
        await asyncio.sleep(seconds)
        logger.warning("inside the lane job %s", key)
        await asyncio.sleep(seconds)
    return key


@task(queue_name="lane", max_attempts=1)
async def traced_failure() -> None:
    await asyncio.sleep(0.1)
    raise ValueError("broken in the lane")


@task(queue_name="lane", max_attempts=1)
async def traced_exit(after: float = 1.0) -> None:
    await asyncio.sleep(after)
    os._exit(3)
