"""The supervisor's side of the async lane: many jobs per child, each bounded.

A lane child (lane.py) runs up to K ``async def`` jobs at once in one event
loop. The supervisor keeps for each of them what it keeps for a child's only
job elsewhere: its deadline (a ``Slot``, child_state.py), why it is being
stopped, when to give up on it. Stopping one job must not stop the others,
so a job past its ttr, cancelled from the console or whose claim was lost is
sent a ``Cancel`` (its coroutine gets ``CancelledError``); only if it does
not end within ``KILL_GRACE`` is the child killed, and its other jobs are
handed back uncounted, as on a worker's hard stop.

Two things a lane child cannot say, being stuck or dead, are read from its
board (board.py): which job holds the loop, and since when. ``LaneWatch``
retires a child whose loop one job has held for ``ASYNC_BLOCK_LIMIT``
(logged with the job's task: the one to fix), and after a crash the job that
held the loop is the one that crashed; the others go back.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from ..models import Job
from . import protocol
from .board import Board
from .child_state import Child, Slot, lease_deadline
from .failures import Stop
from .outcomes import log_job

if TYPE_CHECKING:
    from .children import Children

logger = logging.getLogger("django_jobs.worker")

#: Seconds between two slow-step warnings of one task (the count of the
#: others is in the next one).
WARN_EVERY = 60.0


class LaneWatch:
    """Deadlines, cancellations and the loop watchdog of a worker's lane
    children (a worker of ordinary queues has none)."""

    def __init__(
        self,
        children: Children,
        concurrency: int,
        *,
        slow_step: float,
        block_limit: float,
    ) -> None:
        self.children = children
        self.concurrency = concurrency
        self.slow_step = slow_step
        self.block_limit = block_limit
        #: When to read the boards next (monotonic), while jobs run.
        self.look_at = 0.0
        #: Per task path: when its last slow step was logged, and how many
        #: were not logged since.
        self.warned: dict[str, tuple[float, int]] = {}
        #: Jobs that ended lately, by id: the step that sent a job's outcome
        #: may be reported slow after it (``Blocked``).
        self.ended: dict[int, Job] = {}

    # A child's life

    def started(self, new: Child) -> None:
        """A lane child was forked: its board, and what it is to be."""
        new.lane = self.concurrency
        new.board, fd = Board.create()
        lane = protocol.Lane(self.concurrency, self.slow_step)
        self.children.send(new, lane, [fd])

    def given(self, to: Child, jobs: list[Job]) -> None:
        for job in jobs:
            to.slots[job.pk] = Slot(job, lease_deadline(job))

    def finished(self, of: Child, job_id: int) -> tuple[Job, Slot] | None:
        """A lane job's outcome arrived: it leaves its child."""
        slot = of.slots.pop(job_id, None)
        if slot is None:
            return None
        of.jobs.remove(slot.job)
        self.ended[job_id] = slot.job
        if len(self.ended) > 4 * self.concurrency:
            del self.ended[next(iter(self.ended))]
        return slot.job, slot

    def gone(self, of: Child) -> None:
        if of.board is not None:
            of.board.close()
            of.board = None

    # Stopping one job

    def cancel(self, of: Child, slot: Slot, reason: Stop) -> None:
        """Cancel one job of a lane child (its siblings run on); if it has not
        ended within the grace, the child is killed for it."""
        if slot.stopping is not None:
            return
        slot.stopping = reason
        slot.kill_at = time.monotonic() + self.children.kill_grace
        self.children.send(of, protocol.Cancel(slot.job.pk))

    def enforce(self, clock: float) -> list[Job]:
        """Cancel the jobs past their deadline, kill children whose cancelled
        job would not end; the jobs newly timed out."""
        late = []
        for busy in self.children.busy:
            if not busy.lane or busy.stopping is not None:
                continue
            for slot in list(busy.slots.values()):
                if slot.kill_at is not None and clock >= slot.kill_at:
                    self.kill_for(busy, slot)
                    break
                if slot.stopping is None and clock >= slot.deadline:
                    log_job(
                        logging.WARNING, slot.job,
                        "ran past its deadline; cancelling it in lane process %d",
                        busy.pid,
                    )  # fmt: skip
                    self.cancel(busy, slot, Stop.TIMEOUT)
                    late.append(slot.job)
        if clock >= self.look_at:
            self.look_at = clock + min(1.0, self.block_limit / 5)
            self.watch_loops()
        return late

    def kill_for(self, busy: Child, slot: Slot) -> None:
        """``slot``'s job did not end when cancelled: kill its child now."""
        log_job(
            logging.WARNING, slot.job,
            "did not end within %g s of its cancellation; killing process %d "
            "(its %d other job(s) go back to the queue)",
            self.children.kill_grace, busy.pid, len(busy.jobs) - 1,
        )  # fmt: skip
        busy.killed_for = slot.job.pk
        self.children.stop(busy, slot.stopping, now=True)

    def next_deadline(self) -> float | None:
        times = [
            slot.kill_at if slot.kill_at is not None else slot.deadline
            for busy in self.children.busy
            if busy.lane and busy.stopping is None
            for slot in busy.slots.values()
        ]
        if times:
            times.append(self.look_at)
        return min(times, default=None)

    # The watchdog

    def watch_loops(self) -> None:
        """Retire each lane child whose loop one job has held too long."""
        for busy in self.children.busy:
            held = busy.board.holder() if busy.lane and busy.board else None
            if held is None or busy.retiring or held[1] < self.block_limit:
                continue
            slot = busy.slots.get(held[0])
            task = slot.job.task_path if slot else "?"
            logger.warning(
                "job %s %s has held the event loop of lane process %d for %.1f s, "
                "blocking its %d other job(s) (a synchronous call in an async "
                "task?); the process takes no more jobs and will be replaced",
                held[0], task, busy.pid, held[1], len(busy.jobs) - 1,
            )  # fmt: skip
            self.children.tell_to_stop(busy)

    def blocked(self, of: Child, job: Job, seconds: float) -> None:
        """A step of ``job`` held its loop ``seconds``: say so, naming the
        task, at most once a minute per task."""
        clock = time.monotonic()
        last, unsaid = self.warned.get(job.task_path, (-WARN_EVERY, 0))
        if clock - last < WARN_EVERY:
            self.warned[job.task_path] = (last, unsaid + 1)
            return
        self.warned[job.task_path] = (clock, 0)
        more = f" ({unsaid} more such step(s) of this task since the last)"
        log_job(
            logging.WARNING, job,
            "held the event loop of lane process %d for %.3f s, blocking the "
            "jobs beside it: an async task must not make synchronous calls "
            "(time.sleep, requests, the ORM without await) or compute for long%s",
            of.pid, seconds, more if unsaid else "",
        )  # fmt: skip

    # A child that died

    def split(self, gone: Child) -> tuple[list[Job], list[Job]]:
        """The jobs a dead lane child's attempt counts for, and the jobs that
        go back uncounted.

        The job it was killed for (it ignored its cancellation), else the job
        holding its loop when it died (it crashed it). A crash that is no
        job's for certain (between steps: a thread, a signal, the kernel's
        OOM killer) counts for every job that had started, so that a job
        crashing its child where the board cannot see it is retried as its
        task says and buried in the end, not handed back for ever.
        """
        culprit = gone.killed_for
        if culprit is None and gone.board is not None:
            held = gone.board.holder()
            culprit = held[0] if held else None
        jobs = self.children.take_jobs(gone)
        if culprit is None:
            started = {pk for pk, slot in gone.slots.items() if slot.started}
        else:
            started = {culprit}
        counted = [job for job in jobs if job.pk in started]
        return counted, [job for job in jobs if job.pk not in started]
