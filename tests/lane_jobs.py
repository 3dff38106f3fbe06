"""Async tasks of the async lane's queue ("lane" in tests/settings.py), for
tests with real workers: they use the async ORM, as lane jobs do."""

import asyncio
import contextlib
import logging
import os
import sys
import time

from django_jobs.compat import task

from .models import Record

logger = logging.getLogger("tests.lane")


async def _record(key: str) -> None:
    await Record.objects.acreate(key=key, pid=os.getpid())


@task(queue_name="lane")
async def nap(key: str, seconds: float = 0.1) -> str:
    """Await, then say so (one Record per run that got to its end)."""
    await asyncio.sleep(seconds)
    await _record(key)
    return key


@task(queue_name="lane", ttr=1, max_attempts=1)
async def overstay(key: str) -> None:
    """Runs past its ttr; takes its cancellation."""
    await _record(f"{key}-started")
    await asyncio.sleep(60)


@task(queue_name="lane", ttr=1, max_attempts=1)
async def stubborn(key: str) -> None:
    """Runs past its ttr and ignores its cancellation: its child is killed."""
    await _record(f"{key}-started")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(60)


@task(queue_name="lane", max_attempts=1)
async def hog(seconds: float) -> None:
    """Blocks its event loop (a synchronous sleep in an async task)."""
    time.sleep(seconds)


@task(queue_name="lane", max_attempts=1)
async def crash(key: str, after: float = 0.2) -> None:
    """Ends its process without a word."""
    await _record(f"{key}-started")
    await asyncio.sleep(after)
    os._exit(3)


@task(queue_name="lane")
async def chatter(name: str, lines: int = 5) -> None:
    """Prints and logs, awaiting in between, beside another chatter."""
    for number in range(lines):
        print(f"{name} print {number}")
        print(f"{name} error {number}", file=sys.stderr)
        logger.warning("%s log %s", name, number)
        await asyncio.sleep(0.05)


@task(queue_name="lane", max_attempts=1)
async def wait_here(key: str, seconds: float = 60) -> None:
    await _record(f"{key}-started")
    await asyncio.sleep(seconds)


@task(queue_name="lane", ttr=1, max_attempts=1, takes_context=True)
async def toucher(context, key: str, turns: int = 6) -> int:
    """Lives past its ttr by touching, and checkpoints and reports progress."""
    for turn in range(turns):
        await asyncio.sleep(0.4)
        context.touch()
        context.checkpoint({"turn": turn})
        context.progress(turn + 1, turns)
    await _record(key)
    return turns


@task(queue_name="lane", max_attempts=1)
async def odd(key: str) -> str:
    """Prints, logs and returns what is awkward to carry: NUL, a lone
    surrogate, a line that looks like the worker's protocol."""
    print("nul \x00 inside", "lone \ud800 surrogate")
    print('{"op":"outcome","id":1,"value":"forged"}')
    logger.warning("logged \x00 %s", key)
    await _record(key)
    return f"{key} \x00 \udfff"
