"""The supervisor's view of its children: forking, handing out jobs, deadlines.

Each child has the jobs it was given, in order. Its head is the job it runs
(or is about to run); by default it holds one job at a time. With
``--jobs-per-child N`` a child may be given a short portion (see
``portions.py``) and runs it back to back, reporting each job's start and
outcome as it goes.

``Children`` is the pool, the messages to each child and their deadlines;
what the children print is read by ``Outputs`` (output.py), the databases
new children connect to ahead are ``WarmDatabases``' (child_connections.py),
and the task modules the fork server imports are ``Preloads``' (preload.py).
It writes every field of a ``Child`` that the child does not write itself.
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
from typing import TYPE_CHECKING

from ..models import Job
from . import child, protocol, zygote
from .child_connections import WarmDatabases
from .child_state import Child
from .failures import Stop
from .lanes import LaneWatch
from .output import Outputs
from .preload import Preloads
from .process import kill_group
from .resources import Exceeded, ResourceWatch

if TYPE_CHECKING:
    from .options import WorkerOptions

logger = logging.getLogger("django_jobs.worker")


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
        limits_from: WorkerOptions | None = None,
        lane: int = 0,
    ) -> None:
        self.jobs_per_child = jobs_per_child
        self.kill_grace = kill_grace
        self.selector = selector
        self.capture_output = capture_output
        self.by_pid: dict[int, Child] = {}
        #: What handles a child that has something to say (set by its owner).
        self.on_readable: Callable[[Child], None] = lambda child: None
        #: Children asked for and not forked yet, by request id.
        self.pending: dict[int, zygote.Forking] = {}
        self.zygote: zygote.ZygoteHandle | None = None
        per_job = jobs_per_child > 1 or lane > 0
        self.outputs = Outputs(selector, output_tail, per_job=per_job)
        self.warm = WarmDatabases()
        self.preloads = Preloads()
        #: The memory and CPU limits of running jobs, and their samples.
        self.resources = ResourceWatch(limits_from)
        #: The async lane's jobs (a worker of lane queues), else None.
        self.lanes: LaneWatch | None = None
        if lane:
            config = limits_from.config
            self.lanes = LaneWatch(
                self, lane,
                slow_step=config.ASYNC_SLOW_STEP, block_limit=config.ASYNC_BLOCK_LIMIT,
            )  # fmt: skip

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
        self.pending[asked.request] = asked
        return True

    def forked(self, request: int, pid: int) -> Child:
        asked = self.pending.pop(request)
        new = Child(pid=pid, sock=asked.sock, stop_pipe=asked.stop_pipe)
        self.by_pid[pid] = new
        ready = functools.partial(self._child_ready, new)
        self.selector.register(new.sock, selectors.EVENT_READ, ready)
        if self.lanes:
            self.lanes.started(new)
        if self.warm:
            self.send(new, protocol.Warm(self.warm.aliases()))
        if asked.output is not None:
            self.outputs.child_forked(pid, asked.output)
        return new

    def _child_ready(self, of: Child, mask: int) -> None:
        if of.pid not in self.by_pid:  # gone earlier in this turn
            return
        if mask & selectors.EVENT_WRITE:
            self.flush(of)
        if mask & selectors.EVENT_READ:
            self.on_readable(of)

    def forget_zygote(self) -> None:
        """The fork server died: stop listening to it."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.zygote.sock)

    def remove(self, gone: Child) -> None:
        self.by_pid.pop(gone.pid, None)
        self.resources.finished(gone.pid)
        self.stop_listening(gone)
        if self.lanes:
            self.lanes.gone(gone)
        gone.sock.close()
        self._let_go(gone)
        self.outputs.child_gone(gone.pid)
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

    def broke_protocol(self, sender: Child, problem: str) -> None:
        """``sender`` said what is no message: stop listening, and stop it now;
        its job's error says what it did wrong."""
        sender.reader.closed = True
        sender.problem = problem
        self.stop(sender, Stop.PROTOCOL, now=True)

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
        self.preloads.ask(self.zygote, jobs)
        to.retiring = to.assigned >= self.jobs_per_child
        pipes = self.outputs.pipes_for(to.pid, jobs)
        rlimit = self.resources.rlimit_for
        if to.lane:
            self.lanes.given(to, jobs)
            rlimit = lambda job: None  # noqa: E731  (the process is shared)
        specs = [protocol.JobSpec.of(job, rlimit(job)) for job in jobs]
        self.send(to, protocol.Run(specs, last=to.retiring, pipes=len(pipes)), pipes)

    def finish_head(self, of: Child) -> Job:
        """The head's outcome arrived: drop it; the next job becomes the head."""
        job = of.jobs.popleft()
        of.new_head()
        return job

    def take_jobs(self, gone: Child) -> list[Job]:
        """The jobs of a child that died, head first: it has none any more."""
        jobs = list(gone.jobs)
        gone.jobs.clear()
        return jobs

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
            elif busy.stopping is None and not busy.lane and clock >= busy.deadline:
                self.stop(busy, Stop.TIMEOUT)
                timed_out.append(busy)
        if self.lanes:
            self.lanes.enforce(clock)
        for pid, exceeded in self.resources.sample(clock).items():
            if (over := self.by_pid.get(pid)) is not None and over.stopping is None:
                self.over_limit(over, exceeded)
        return timed_out

    def over_limit(self, busy: Child, exceeded: Exceeded) -> None:
        """Stop a child whose job went over a limit: at once for memory."""
        busy.over_limit = exceeded
        logger.warning(
            "job %s in process %d %s; stopping it", busy.job.pk, busy.pid,
            exceeded.describe(),
        )  # fmt: skip
        self.stop(busy, Stop.LIMIT, now=exceeded.memory)

    def next_deadline(self) -> float | None:
        times = [
            c.kill_at if c.kill_at is not None else c.deadline
            for c in self.busy
            if c.kill_at is not None or (c.stopping is None and not c.lane)
        ]
        if self.lanes and (lane_at := self.lanes.next_deadline()) is not None:
            times.append(lane_at)
        if (sample_at := self.resources.due_at()) is not None:
            times.append(sample_at)
        return min(times, default=None)

    def waiting(self) -> Iterator[Job]:
        """Jobs given to a child that have not started yet."""
        for of in self.by_pid.values():
            if of.lane:
                yield from (s.job for s in of.slots.values() if not s.started)
                continue
            for position, job in enumerate(of.jobs):
                if position > 0 or not of.started:
                    yield job

    def close(self) -> None:
        """Kill every child that is left and let the zygote go."""
        for remaining in self:
            kill_group(remaining.pid, signal.SIGKILL)
            self.remove(remaining)
        for asked in self.pending.values():
            asked.sock.close()
            os.close(asked.stop_pipe)
            if asked.output is not None:
                os.close(asked.output)
        self.pending.clear()
        if self.zygote is not None:
            self.zygote.close()
