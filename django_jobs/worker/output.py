"""What children print: relayed to the worker's logging and kept on the job.

A child's stdout and stderr (Python's, its logging's console handler, any C
library's or subprocess's) go to a pipe that the supervisor reads. Each line
is logged under ``django_jobs.output`` with the job's id, task and attempt,
and the last ``OUTPUT_TAIL`` bytes of each attempt are stored on the job.
Lines are the output of the child's current job: the supervisor reads the
pipe before it takes an outcome, and a child that runs several jobs in a row
marks the end of each job's lines, so that a job's lines are never taken for
the next one's.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence

from ..logging import job_fields
from ..models import Job

logger = logging.getLogger("django_jobs.output")

END = b"\x00django-jobs:end "


class OutputPipe:
    """The read end of one child's output, and the tails of its jobs."""

    def __init__(self, fd: int, pid: int, tail_size: int) -> None:
        self.fd = fd
        self.pid = pid
        self.tail_size = tail_size
        self.pending = b""
        self.closed = False
        self.ended: set[int] = set()  # jobs whose end mark was read
        self.tails: dict[int, tuple[bytearray, bool]] = {}

    def fileno(self) -> int:
        return self.fd

    def read(self, jobs: Sequence[Job]) -> None:
        """Read what is there; ``jobs`` are the child's, current one first."""
        while not self.closed:
            try:
                data = os.read(self.fd, 65536)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            *lines, self.pending = (self.pending + data).split(b"\n")
            for line in lines:
                self.line(line, jobs)
        if self.closed and self.pending:
            self.line(self.pending, jobs)
            self.pending = b""

    def line(self, line: bytes, jobs: Sequence[Job]) -> None:
        if line.startswith(END):
            self.ended.add(int(line[len(END) :]))
            return
        text = line.decode(errors="replace").rstrip("\r")
        # The current job: the first of the child's jobs not marked ended.
        job = next((job for job in jobs if job.pk not in self.ended), None)
        if job is None:
            logger.info("child %d: %s", self.pid, text)
            return
        logger.info(
            "job %s %s (attempt %s): %s",
            job.pk,
            job.task_path,
            job.attempts,
            text,
            extra=job_fields(job),
        )
        if self.tail_size:
            self.keep(job.pk, line + b"\n")

    def keep(self, job_id: int, data: bytes) -> None:
        tail, truncated = self.tails.get(job_id, (bytearray(), False))
        tail += data
        if len(tail) > self.tail_size:
            del tail[: len(tail) - self.tail_size]
            truncated = True
        self.tails[job_id] = (tail, truncated)

    def take_tail(self, job_id: int) -> tuple[str, bool] | None:
        """The output kept for a job (and whether its start was cut), once."""
        self.ended.discard(job_id)
        kept = self.tails.pop(job_id, None)
        if kept is None:
            return None
        tail, truncated = kept
        return tail.decode(errors="replace"), truncated

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
