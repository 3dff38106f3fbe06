"""What children print: relayed to the worker's logging and kept on the job.

A child's stdout and stderr (Python's, its logging's console handler, any C
library's or subprocess's) go to a pipe that the supervisor reads. Each line
is logged under ``django_jobs.output`` with the job's id, task and attempt,
and the last ``OUTPUT_TAIL`` bytes of each attempt are stored on the job.

Which job a line belongs to is never read from the output itself: whatever
a job prints is data, whatever it looks like. A child that runs a single job
prints into the pipe the fork server gave it, and all of it is that job's. A
child that runs several jobs in a row is given one pipe per job by the
supervisor (``jobs.pipes``); it points its stdout and stderr at the job's
pipe while the job runs, and back at its own pipe between jobs, so each
pipe holds one job's output and nothing else.
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors

from ..logging import log_fields
from ..models import Job

logger = logging.getLogger("django_jobs.output")

#: A line longer than this is logged in pieces: a job that prints megabytes
#: without a newline must not grow the supervisor's memory.
MAX_LINE = 16 * 1024
#: Bytes read from one pipe per turn of the loop, so that a job that prints
#: without pause cannot keep its supervisor from everything else.
READ_BUDGET = 1024 * 1024


class OutputPipe:
    """The read end of one pipe: a child's output, or one job's."""

    def __init__(
        self, fd: int, pid: int, tail_size: int, job: Job | None = None
    ) -> None:
        self.fd = fd
        self.pid = pid
        #: Whose output this is (None: the child's own, between jobs).
        self.job = job
        self.tail_size = tail_size
        self.pending = b""
        self.closed = False
        self.tail = bytearray()
        self.truncated = False

    def fileno(self) -> int:
        return self.fd

    def read(self, budget: int = READ_BUDGET) -> None:
        """Read what is there, up to ``budget`` bytes."""
        while not self.closed and budget > 0:
            try:
                data = os.read(self.fd, min(65536, budget))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                data = b""
            if not data:
                self.closed = True
                break
            budget -= len(data)
            *lines, self.pending = (self.pending + data).split(b"\n")
            while len(self.pending) > MAX_LINE:
                lines.append(self.pending[:MAX_LINE])
                self.pending = self.pending[MAX_LINE:]
            for line in lines:
                self.line(line)
        if self.closed and self.pending:
            self.line(self.pending)
            self.pending = b""

    def read_all(self) -> None:
        """Read what was written before the job ended (its outcome arrived).

        That is at most a pipe's capacity: a child blocks when its pipe is
        full, so the budget is never the limit, except against a process
        the job left behind that writes without end.
        """
        self.read()
        if self.pending:  # a last line without a newline: the job has ended
            self.line(self.pending)
            self.pending = b""

    def line(self, line: bytes) -> None:
        job = self.job
        text = line.decode(errors="replace").rstrip("\r")
        if job is None:
            logger.info("child %d: %s", self.pid, text)
            return
        logger.info(
            "job %s %s (attempt %s): %s",
            job.pk,
            job.task_path,
            job.attempts,
            text,
            extra=log_fields(job),
        )
        if self.tail_size:
            self.keep(line + b"\n")

    def keep(self, data: bytes) -> None:
        self.tail += data
        if len(self.tail) > self.tail_size:
            del self.tail[: len(self.tail) - self.tail_size]
            self.truncated = True

    def take_tail(self) -> tuple[str, bool] | None:
        """The output kept (and whether its start was cut), once."""
        if not self.tail:
            return None
        kept = self.tail.decode(errors="replace"), self.truncated
        self.tail, self.truncated = bytearray(), False
        return kept

    def close(self) -> None:
        """Close the read end, once: its number may be reused right after."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
        self.fd = -1
        self.closed = True


class Outputs:
    """The pipes the supervisor reads its children's output from.

    Each child's own pipe (from the fork server) and, for a child that runs
    several jobs, one pipe per job (made here, their write ends sent with
    the jobs), each watched with the supervisor's selector.
    """

    def __init__(
        self, selector: selectors.BaseSelector, tail_size: int, *, per_job: bool
    ) -> None:
        self.selector = selector
        self.tail_size = tail_size
        #: Whether a child runs several jobs (a pipe per job) or one.
        self.per_job = per_job
        #: Each child's own pipe, by its pid.
        self.of_child: dict[int, OutputPipe] = {}
        #: Each job's pipe, by its id, when a child runs several.
        self.of_job: dict[int, OutputPipe] = {}

    def child_forked(self, pid: int, fd: int) -> None:
        """Watch a new child's own pipe (the read end, from the fork server)."""
        self._watch(OutputPipe(fd, pid, self.tail_size), pid)

    def pipes_for(self, pid: int, jobs: list[Job]) -> list[int]:
        """Where ``jobs``, given to child ``pid``, print: the write ends of
        their pipes, to send to the child (none: it prints into its own)."""
        own = self.of_child.get(pid)
        if own is None:
            return []
        if not self.per_job:
            own.job = jobs[0]  # all it prints is its only job's
            return []
        ends = []
        for job in jobs:
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            self._watch(OutputPipe(read_end, pid, self.tail_size, job), job.pk)
            ends.append(write_end)
        return ends

    def collect(self, pid: int, job: Job) -> tuple[str, bool] | None:
        """Everything ``job`` printed, now that it ended: relayed, and its tail."""
        pipe = self.of_job.pop(job.pk, None)
        if pipe is None and not self.per_job:
            pipe = self.of_child.get(pid)
        if pipe is None:
            return None
        pipe.read_all()
        if pipe is not self.of_child.get(pid):
            self._drop(pipe)
        return pipe.take_tail()

    def read_child(self, pid: int) -> None:
        """What a child that exited printed last."""
        pipe = self.of_child.get(pid)
        if pipe is not None and not pipe.closed:
            self._read(pipe)

    def child_gone(self, pid: int) -> None:
        """Read the last lines of a child's pipes, and close them."""
        pipes = [self.of_child.pop(pid, None)]
        for job_id, pipe in list(self.of_job.items()):
            if pipe.pid == pid:
                pipes.append(self.of_job.pop(job_id))
        for pipe in pipes:
            if pipe is not None:
                pipe.read()  # its last lines
                self._drop(pipe)

    def _watch(self, pipe: OutputPipe, key: int) -> None:
        (self.of_job if pipe.job is not None else self.of_child)[key] = pipe
        self.selector.register(pipe, selectors.EVENT_READ, self._ready(pipe))

    def _ready(self, pipe: OutputPipe):
        return lambda mask: self._read(pipe)

    def _read(self, pipe: OutputPipe) -> None:
        """Relay what was printed into ``pipe`` to the worker's logging."""
        pipe.read()
        if pipe.closed:
            self._drop(pipe)

    def _drop(self, pipe: OutputPipe) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(pipe)
        pipe.close()
