"""A lane child's board: which job holds its event loop, and since when.

A lane child runs many jobs in one event loop (lane.py). When one of them
blocks the loop (``time.sleep``, a synchronous client, a CPU loop) or crashes
the process, the supervisor must know which: the child cannot tell it then,
being stuck or dead. So the child writes, around every step of a job's
coroutine, the job's id and the step's start time into a page of memory it
shares with its supervisor (a memfd the supervisor creates and sends with the
``Lane`` message), and the supervisor reads it whenever it likes, at no cost
to the child but two writes per step.

Layout: four little-endian int64: ``seq, job_id, started_ns, spare``. ``seq``
is odd while a step runs; a reader trusts what it read only if ``seq`` was
the same, and odd, before and after (a seqlock: the writer never waits).
``started_ns`` is ``time.monotonic_ns()``, a clock every process of the
machine shares (CLOCK_MONOTONIC).
"""

from __future__ import annotations

import mmap
import os
import time

SIZE = 32


class Board:
    def __init__(self, fd: int) -> None:
        self._map = mmap.mmap(fd, SIZE)
        self._words = memoryview(self._map).cast("q")
        self._seq = 0

    @classmethod
    def create(cls) -> tuple[Board, int]:
        """A new board and its file descriptor (to send to the child, then
        close: the board keeps its own mapping)."""
        fd = os.memfd_create("django-jobs-board", os.MFD_CLOEXEC)
        os.ftruncate(fd, SIZE)
        return cls(fd), fd

    @classmethod
    def attach(cls, fd: int) -> Board:
        """The board the supervisor sent (the child's side); ``fd`` is closed."""
        try:
            return cls(fd)
        finally:
            os.close(fd)

    # The child's side

    def enter(self, job_id: int) -> None:
        words = self._words
        self._seq += 1
        words[0] = self._seq
        words[1] = job_id
        words[2] = time.monotonic_ns()

    def leave(self) -> None:
        words = self._words
        words[1] = 0
        self._seq += 1
        words[0] = self._seq

    # The supervisor's side

    def holder(self) -> tuple[int, float] | None:
        """The job holding the loop now and for how many seconds so far;
        None when no job does (or the child is between two writes)."""
        words = self._words
        seq, job_id, started = words[0], words[1], words[2]
        if seq % 2 == 0 or words[0] != seq or not job_id:
            return None
        return job_id, max(0.0, (time.monotonic_ns() - started) / 1e9)

    def close(self) -> None:
        self._words.release()
        self._map.close()
