"""Tasks that use memory and CPU, for the tests of per-job limits.

Each writes a ``Record`` with its pid first, so that a test can tell that it
ran and look for its processes afterwards.
"""

from __future__ import annotations

import os
import time

from django_jobs.compat import task
from tests.models import Record

MB = 1_000_000


def _grow(step: int = 10 * MB, pause: float = 0.005, until: int | None = None) -> list:
    """Allocate (and touch) ``step`` bytes at a time, until ``until`` bytes or
    forever."""
    held = []
    while until is None or len(held) * step < until:
        held.append(bytearray(os.urandom(16)) * (step // 16))
        time.sleep(pause)
    return held


@task
def leak(key: str) -> None:
    """Allocate memory in a loop until it is killed."""
    Record.objects.create(key=key, pid=os.getpid())
    _grow()


@task
def leak_in_grandchild(key: str) -> None:
    """Fork a process that allocates in a loop, and wait for it."""
    Record.objects.create(key=key, pid=os.getpid())
    grandchild = os.fork()
    if grandchild == 0:
        try:
            _grow()
        finally:
            os._exit(0)
    Record.objects.create(key=f"{key}-grandchild", pid=grandchild)
    os.waitpid(grandchild, 0)


@task
def spin(key: str) -> None:
    """Use CPU until it is killed."""
    Record.objects.create(key=key, pid=os.getpid())
    while True:
        pass


@task
def allocate(megabytes: int) -> int:
    """Hold ``megabytes`` of memory for a moment, and return the pid."""
    held = _grow(step=MB, pause=0, until=megabytes * MB)
    time.sleep(0.2)
    del held
    return os.getpid()


@task
def burn(seconds: float) -> float:
    """Use about ``seconds`` of CPU time, then return."""
    started = time.process_time()
    while time.process_time() - started < seconds:
        pass
    return time.process_time() - started
