"""Tasks for the async lane's child (tests/unit/test_lane_child.py).

Module level, as every task must be: the lane child imports them by dotted
path.
"""

import asyncio
import logging
import sys
import threading
import time

from asgiref.sync import sync_to_async

from django_jobs.compat import task

logger = logging.getLogger("tests.lane_tasks")


@task()
async def nap(seconds: float) -> float:
    """Wait without holding the loop."""
    await asyncio.sleep(seconds)
    return seconds


@task()
async def wait_forever() -> None:
    await asyncio.sleep(3600)


@task()
def plain() -> str:
    """A sync task: the lane refuses it."""
    return "ran"


@task()
async def hog(seconds: float) -> str:
    """Hold the loop: every other job of the child waits meanwhile."""
    time.sleep(seconds)
    return "done"


@task()
async def hog_in_gather(seconds: float) -> str:
    """Hold the loop from a task the job spawns (as a crawl's gather does)."""

    async def fetch() -> None:
        await asyncio.sleep(0)
        time.sleep(seconds)

    await asyncio.gather(fetch(), asyncio.sleep(0.01))
    return "done"


@task()
async def chatter(name: str, lines: int) -> int:
    """Print, log and write to stderr, letting the others run in between."""
    for number in range(lines):
        print(f"{name} out {number}")
        await asyncio.sleep(0.01)
        logger.warning("%s logged %d", name, number)
        await asyncio.sleep(0)
        print(f"{name} err {number}", file=sys.stderr)
        await asyncio.sleep(0.01)
    print(f"{name} no newline", end="")
    return lines


@task(takes_context=True)
async def touching(context, then: float) -> str:
    """Extend its reservation (a blocking round trip to the supervisor), then
    wait ``then`` seconds."""
    deadline = context.touch(30)
    await asyncio.sleep(then)
    return deadline.isoformat()


@task()
async def orm_thread() -> list[int]:
    """The thread this job runs in, and the one Django's async ORM would use
    (``sync_to_async``, thread-sensitive)."""
    return [threading.get_ident(), await sync_to_async(threading.get_ident)()]
