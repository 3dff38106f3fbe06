"""Running jobs the moment they are enqueued, for a block of a test."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

from ..backend import JobsBackend
from ..compat import TASK_REFRESH_ATTRS, TaskResult, task_backends, task_enqueued
from ..models import Job
from ..states import State
from .runner import Runner, Selection, TaskLike, running


class EagerRunner(Runner):
    """Runs each job of its selection as its ``task_enqueued`` signal is sent.

    A job enqueued by a job it is running waits until that job has finished
    (a worker could not start it sooner either), then runs. So does a job
    that waits for other jobs (``workflows.after``): it runs once the run of
    the last of them released it.
    """

    def __init__(self, selection: Selection, **options: Any) -> None:
        super().__init__(selection, **options)
        self.pending: list[TaskResult] = []
        #: Jobs enqueued while they waited for others, to run once released.
        self.waiting: list[TaskResult] = []

    def on_enqueue(self, sender: type, task_result: TaskResult, **kwargs) -> None:
        if not issubclass(sender, JobsBackend) or not self.selection.serves(
            task_result.backend
        ):
            return
        task = task_result.task
        if not self.selection.takes(task.module_path, task.queue_name):
            return
        current = running.get()
        if current is self:
            self.pending.append(task_result)
        if current is not None:
            return  # after the running job (run_jobs() takes it if it wants)
        self.run_enqueued(task_result)
        while self.pending:
            self.run_enqueued(self.pending.pop(0))
        while released := self.released():
            for result in released:
                self.run_enqueued(result)

    def run_enqueued(self, task_result: TaskResult) -> None:
        """Run this job now, and bring ``task_result`` up to date with it."""
        backend = task_backends[task_result.backend]
        claimed = self.claim_next(
            only={int(task_result.id)},
            backends=[backend],
            queues=[task_result.task.queue_name],
        )
        if claimed is None:  # not due, expired, rolled back, or waiting
            if self.state_of(task_result) == State.WAITING:
                self.waiting.append(task_result)
            return
        final = self.run(*claimed)
        if final is not None:
            for name in TASK_REFRESH_ATTRS:
                object.__setattr__(task_result, name, getattr(final, name))

    def released(self) -> list[TaskResult]:
        """The waiting jobs that the runs so far released (or ended)."""
        gone = [r for r in self.waiting if self.state_of(r) != State.WAITING]
        self.waiting = [r for r in self.waiting if r not in gone]
        return gone

    @staticmethod
    def state_of(task_result: TaskResult) -> str | None:
        db = task_backends[task_result.backend].db
        rows = Job.objects.using(db).filter(pk=int(task_result.id))
        return rows.values_list("state", flat=True).first()


@contextlib.contextmanager
def run_on_enqueue(
    *,
    tasks: Iterable[TaskLike] | None = None,
    queues: Iterable[str] | None = None,
    backend: str | None = None,
    delayed: bool = False,
    raise_errors: bool = True,
) -> Iterator[None]:
    """Run jobs as they are enqueued in the block ("eager" mode).

    Only the jobs of ``tasks`` (Task objects or dotted paths) and ``queues``,
    on the ``backend`` alias (default: every django-jobs backend). A job
    enqueued with a later ``run_after`` waits unless ``delayed`` is true.
    With ``raise_errors`` (the default), a failing job's exception comes out
    of ``enqueue()``, after its failed attempt was recorded. The
    ``TaskResult`` that ``enqueue()`` returns shows the job's outcome.
    """
    runner = EagerRunner(
        Selection.of(tasks, queues, backend),
        delayed=delayed,
        raise_errors=raise_errors,
    )
    task_enqueued.connect(runner.on_enqueue, weak=False)
    try:
        yield
    finally:
        task_enqueued.disconnect(runner.on_enqueue)
