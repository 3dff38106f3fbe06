"""What children print: relayed to the worker's logging and kept on the job.

A child's stdout and stderr (Python's, its logging's console handler, any C
library's or subprocess's) go to a pipe that the supervisor reads. Each line
is logged under ``django_jobs.output`` with the job's id, task and attempt,
and the last ``OUTPUT_TAIL`` bytes of each attempt are stored on the job.
The child marks where each job's output starts and ends, so lines are
attributed to the right job even when a child runs several in a row.
"""

from __future__ import annotations

import contextlib
import logging
import os

from ..models import Job

logger = logging.getLogger("django_jobs.output")

START = b"\x00django-jobs:start "
END = b"\x00django-jobs:end "


class OutputPipe:
    """The read end of one child's output, and the tails of its jobs."""

    def __init__(self, fd: int, pid: int, tail_size: int) -> None:
        self.fd = fd
        self.pid = pid
        self.tail_size = tail_size
        self.pending = b""
        self.closed = False
        self.job: Job | None = None
        self.tails: dict[int, tuple[bytearray, bool]] = {}

    def fileno(self) -> int:
        return self.fd

    def read(self, jobs: dict[int, Job]) -> None:
        """Read what is there; ``jobs`` are the child's jobs by id."""
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

    def line(self, line: bytes, jobs: dict[int, Job]) -> None:
        if line.startswith(START):
            self.job = jobs.get(int(line[len(START) :]))
            return
        if line.startswith(END):
            self.job = None
            return
        text = line.decode(errors="replace").rstrip("\r")
        job = self.job
        if job is None:
            logger.info("child %d: %s", self.pid, text)
            return
        logger.info(
            "job %s %s (attempt %s): %s",
            job.pk,
            job.task_path,
            job.attempts,
            text,
            extra={"job_id": job.pk, "task": job.task_path, "attempt": job.attempts},
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
        kept = self.tails.pop(job_id, None)
        if kept is None:
            return None
        tail, truncated = kept
        return tail.decode(errors="replace"), truncated

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)
