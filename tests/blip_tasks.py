"""Tasks for the tests of a database that blinks while jobs touch and checkpoint.

They never use the database themselves: the test cuts the worker's database
off, and only the supervisor's writes (touches, checkpoints, outcomes) are
what is being tested. They talk to the test through files instead: each step
is written to ``steps`` (so the test knows the job went on), and the job
finishes once the file ``finish`` exists (so the test decides when, without
guessing how long anything takes). Every loop is bounded.
"""

from __future__ import annotations

import time
from pathlib import Path

from django_jobs.compat import task

#: Seconds between two touches or checkpoints.
EVERY = 0.2
#: A job gives up waiting for ``finish`` after this long (a test that failed).
LONGEST = 120.0


def _steps(context, steps: str, finish: str, save) -> int:
    """Call ``save(step)`` every EVERY seconds until ``finish`` exists."""
    step = (context.last_checkpoint or {}).get("step", 0)
    give_up = time.monotonic() + LONGEST
    while not Path(finish).exists() and time.monotonic() < give_up:
        time.sleep(EVERY)
        step += 1
        save(step)
        Path(steps).write_text(str(step))
    return step


@task(takes_context=True)
def touch_until(context, steps: str, finish: str) -> int:
    """Touch every EVERY seconds until told to finish; return the steps."""
    return _steps(context, steps, finish, lambda step: context.touch())


@task(takes_context=True)
def checkpoint_until(context, steps: str, finish: str) -> int:
    """Checkpoint ``{"step": n}`` every EVERY seconds until told to finish."""
    return _steps(
        context, steps, finish, lambda step: context.checkpoint({"step": step})
    )
