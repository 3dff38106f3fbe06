"""The supervisor's view of its children: forking, handing out jobs, deadlines.

Each child has the jobs it was given, in order. Its head is the job it runs
(or is about to run); by default it holds one job at a time. With
``--jobs-per-child N`` a child may be given a short portion (see
``portions.py``) and runs it back to back, reporting each job's start and
outcome as it goes.

The children register their sockets and output pipes with the supervisor's
selector themselves, each with the callback that handles it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import signal
import socket
import time
from collections.abc import Callable, Iterator

from ..models import Job
from . import child, protocol, zygote
from .child_state import Child
from .failures import Stop
from .output import OutputPipe
from .preload import Preloads
from .process import kill_group

logger = logging.getLogger("django_jobs.worker")

#: Jobs in a row that may not use a database before spares stop connecting
#: to it ahead of their job.
WARM_MEMORY = 20


class Children:
    """Every child of this worker, and the zygote they are forked from."""

    def __init__(
        self,
        jobs_per_child: int,
        kill_grace: float,
        selector: selectors.BaseSelector,
        *,
        capture_output: bool = True,
        output_tail: int = 0,
    ) -> None:
        self.jobs_per_child = jobs_per_child
        self.kill_grace = kill_grace
        self.selector = selector
        self.capture_output = capture_output
        self.output_tail = output_tail
        self.by_pid: dict[int, Child] = {}
        #: What handles a child that has something to say (set by its owner).
        self.on_readable: Callable[[Child], None] = lambda child: None
        # fork request id -> our end of its socket, and of its output pipe
        self.pending: dict[int, tuple[socket.socket, int | None]] = {}
        # fork request id -> our end of its stop pipe
        self.stop_pipes: dict[int, int] = {}
        self.zygote: zygote.ZygoteHandle | None = None
        self.preloads = Preloads()
        #: The databases recent jobs used: new children connect ahead.
        self.warm: dict[str, int] = {}

    def start_zygote(self) -> None:
        self.zygote = zygote.start(child.main)

    # Population

    def __iter__(self) -> Iterator[Child]:
        return iter(list(self.by_pid.values()))

    @property
    def busy(self) -> list[Child]:
        return [c for c in self.by_pid.values() if c.jobs]

    def jobs_in_hand(self) -> int:
        return sum(len(c.jobs) for c in self.by_pid.values())

    def active_count(self) -> int:
        """Children that are or will be able to take a job."""
        alive = sum(1 for c in self.by_pid.values() if not c.retiring)
        return alive + len(self.pending)

    def fork(self) -> bool:
        """Ask the zygote for a child; False if it is gone (the supervisor
        learns it from the zygote's socket, and stops)."""
        try:
            asked = self.zygote.fork(self.capture_output)
        except OSError:
            return False
        self.pending[asked.request] = (asked.sock, asked.output)
        self.stop_pipes[asked.request] = asked.stop_pipe
        return True

    def forked(self, request: int, pid: int) -> Child:
        sock, output = self.pending.pop(request)
        new = Child(pid=pid, sock=sock, stop_pipe=self.stop_pipes.pop(request, None))
        self.by_pid[pid] = new
        ready = functools.partial(self._child_ready, new)
        self.selector.register(new.sock, selectors.EVENT_READ, ready)
        if self.warm:
            self.send(new, protocol.Warm(sorted(self.warm)))
        if output is not None:
            new.output = OutputPipe(output, pid, self.output_tail)
            self._watch_pipe(new.output)
        return new

    def _child_ready(self, of: Child, mask: int) -> None:
        if of.pid not in self.by_pid:  # gone earlier in this turn
            return
        if mask & selectors.EVENT_WRITE:
            self.flush(of)
        if mask & selectors.EVENT_READ:
            self.on_readable(of)

    def _watch_pipe(self, pipe: OutputPipe) -> None:
        ready = functools.partial(self._pipe_ready, pipe)
        self.selector.register(pipe, selectors.EVENT_READ, ready)

    def _pipe_ready(self, pipe: OutputPipe, mask: int) -> None:
        self.read_output(pipe)

    def forget_zygote(self) -> None:
        """The fork server died: stop listening to it."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.zygote.sock)

    def read_output(self, pipe: OutputPipe) -> None:
        """Relay what was printed into ``pipe`` to the worker's logging."""
        pipe.read()
        if pipe.closed:
            self._drop_pipe(pipe)

    def collect_output(self, of: Child, job: Job) -> tuple[str, bool] | None:
        """Everything ``job`` printed, now that it ended: relayed, and its tail."""
        pipe = of.job_outputs.pop(job.pk, None)
        if pipe is None:
            pipe = of.output if self.jobs_per_child == 1 else None
        if pipe is None:
            return None
        pipe.read_all()
        if pipe is not of.output:
            self._drop_pipe(pipe)
        return pipe.take_tail()

    def _drop_pipe(self, pipe: OutputPipe) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(pipe)
        pipe.close()

    def remove(self, gone: Child) -> None:
        self.by_pid.pop(gone.pid, None)
        self.stop_listening(gone)
        gone.sock.close()
        self._let_go(gone)
        for pipe in [gone.output, *gone.job_outputs.values()]:
            if pipe is not None:
                pipe.read()  # its last lines
                self._drop_pipe(pipe)
        gone.job_outputs.clear()
        for _, fds in gone.outbox:
            for fd in fds:
                os.close(fd)
        gone.outbox.clear()

    def stop_listening(self, to: Child) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(to.sock)

    # Messages

    def send(
        self, to: Child, message: protocol.Message, fds: list[int] | None = None
    ) -> None:
        """Send without blocking: what the child does not take now waits.

        ``fds`` go with the message (they are ours until sent, then closed).
        """
        to.outbox.append((bytearray(protocol.encode(message)), fds or []))
        self.flush(to)

    def flush(self, to: Child) -> None:
        while to.outbox:
            data, fds = to.outbox[0]
            try:
                if fds:
                    sent = socket.send_fds(to.sock, [data], fds, socket.MSG_DONTWAIT)
                    for fd in fds:  # the child has them now
                        os.close(fd)
                    fds.clear()
                else:
                    sent = to.sock.send(data, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the child is gone; its exit will be reported
                break
            del data[:sent]
            if not data:
                to.outbox.popleft()
        if to.reader.closed:
            return
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if to.outbox else 0)
        with contextlib.suppress(KeyError, ValueError):
            key = self.selector.get_key(to.sock)
            if key.events != events:
                self.selector.modify(to.sock, events, key.data)

    # Jobs

    def room(self, of: Child, portion: int) -> int:
        """How many more jobs ``of`` may be given now, in portions of ``portion``."""
        if of.retiring or of.stopping or of.reader.closed:
            return 0
        budget = self.jobs_per_child - of.assigned
        return max(0, min(portion - len(of.jobs), budget))

    def dispatch(self, to: Child, jobs: list[Job]) -> None:
        """Append ``jobs`` to a child's queue and send them to it."""
        to.jobs.extend(jobs)
        if len(to.jobs) == len(jobs):
            to.new_head()
        to.assigned += len(jobs)
        self.preload(jobs)
        to.retiring = to.assigned >= self.jobs_per_child
        pipes = self._job_pipes(to, jobs)
        specs = [protocol.JobSpec.of(job) for job in jobs]
        self.send(to, protocol.Run(specs, last=to.retiring, pipes=len(pipes)), pipes)

    def used_databases(self, aliases: list[str]) -> None:
        """A job finished having used ``aliases``: children to come connect to
        them ahead; one not used by ``WARM_MEMORY`` jobs in a row is dropped."""
        for alias in list(self.warm):
            self.warm[alias] -= 1
            if self.warm[alias] <= 0:
                del self.warm[alias]
        for alias in aliases:
            self.warm[alias] = WARM_MEMORY

    def preload(self, jobs: list[Job]) -> None:
        """Have the zygote import the modules of these jobs' tasks, once: the
        children forked after that inherit them (see preload.py)."""
        if self.zygote is None:
            return
        paths = [job.task_path for job in jobs]
        for module in self.preloads.to_ask(paths, time.monotonic()):
            self.zygote.preload(module)

    def preloaded(self, module: str, ok: bool, importable: bool = True) -> None:
        """The zygote's answer (see ``Preloads.answered``)."""
        self.preloads.answered(module, ok, importable, time.monotonic())

    def _job_pipes(self, to: Child, jobs: list[Job]) -> list[int]:
        """The output pipes of ``jobs``: their write ends, to send to the child.

        A child that runs one job prints into its own pipe: all of it is that
        job's. A child that runs several gets a pipe per job (see output.py).
        """
        if to.output is None:
            return []
        if self.jobs_per_child == 1:
            to.output.job = jobs[0]
            return []
        ends = []
        for job in jobs:
            read_end, write_end = os.pipe()
            os.set_blocking(read_end, False)
            pipe = OutputPipe(read_end, to.pid, self.output_tail, job)
            to.job_outputs[job.pk] = pipe
            self._watch_pipe(pipe)
            ends.append(write_end)
        return ends

    def finish_head(self, of: Child) -> Job:
        """The head's outcome arrived: drop it; the next job becomes the head."""
        job = of.jobs.popleft()
        of.new_head()
        return job

    def tell_to_stop(self, of: Child) -> None:
        """Shutdown: no more jobs; the child exits after its current one."""
        of.retiring = True
        self.send(of, protocol.Retire())

    def stop(self, busy: Child, reason: Stop, *, now: bool = False) -> None:
        """Stop a busy child's whole process group: SIGTERM, then SIGKILL."""
        if busy.stopping is None:
            busy.stopping = reason
        self._let_go(busy)  # the SIGTERM that follows is ours: it may die
        if now:
            kill_group(busy.pid, signal.SIGKILL)
            busy.kill_at = None
        elif busy.kill_at is None:
            kill_group(busy.pid, signal.SIGTERM)
            busy.kill_at = time.monotonic() + self.kill_grace

    def _let_go(self, of: Child) -> None:
        """Close our end of ``of``'s stop pipe: stop signals end it from now on."""
        if of.stop_pipe is not None:
            os.close(of.stop_pipe)
            of.stop_pipe = None

    def enforce_deadlines(self, clock: float) -> list[Child]:
        """Stop children past their deadline; return those newly timed out."""
        timed_out = []
        for busy in self.busy:
            if busy.kill_at is not None and clock >= busy.kill_at:
                kill_group(busy.pid, signal.SIGKILL)
                busy.kill_at = None
            elif busy.stopping is None and clock >= busy.deadline:
                self.stop(busy, Stop.TIMEOUT)
                timed_out.append(busy)
        return timed_out

    def next_deadline(self) -> float | None:
        times = [
            c.kill_at if c.kill_at is not None else c.deadline
            for c in self.busy
            if c.kill_at is not None or c.stopping is None
        ]
        return min(times, default=None)

    def waiting(self) -> Iterator[Job]:
        """Jobs given to a child that have not started yet."""
        for of in self.by_pid.values():
            for position, job in enumerate(of.jobs):
                if position > 0 or not of.started:
                    yield job

    def close(self) -> None:
        """Kill every child that is left and let the zygote go."""
        for remaining in self:
            kill_group(remaining.pid, signal.SIGKILL)
            self.remove(remaining)
        for sock, output in self.pending.values():
            sock.close()
            if output is not None:
                os.close(output)
        self.pending.clear()
        for stop_pipe in self.stop_pipes.values():
            os.close(stop_pipe)
        self.stop_pipes.clear()
        if self.zygote is not None:
            self.zygote.close()
