"""A worker for tests: it runs jobs in the test's own process and transaction.

It does what ``runworker`` does to a job, minus the processes: claim it (as
worker ``TEST_WORKER_ID``), call the task, then complete it, or record the
failed attempt (retried with backoff, or buried), all through
``django_jobs.queue``. So the rows, the ``TaskResult`` objects and the
``task_started``/``task_finished`` signals are a worker's, and a test can
assert on them.

What it does not do: enforce ``ttr`` (a job runs to its end), capture output,
or isolate a crash (a job that calls ``os._exit`` ends the test run).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django.utils import timezone

from .. import attempts, queue
from ..attempts import Ended, Next, follows
from ..backend import JobsBackend
from ..compat import Task, TaskResult, task_backends, task_finished, task_started
from ..context import JobContext
from ..models import Job
from ..states import State
from ..workflows import Upstream
from .context import InProcessHolder

#: The worker id that test runs claim jobs with (in ``worker_ids``).
TEST_WORKER_ID = "django-jobs-test-worker"

#: Without a ``limit``, more jobs than this in one run means a job that keeps
#: enqueuing jobs: stop, rather than run forever.
RUNAWAY = 10_000

#: The runner running a job right now, if any (a job may enqueue jobs).
running: contextvars.ContextVar[Runner | None] = contextvars.ContextVar(
    "django_jobs_test_runner", default=None
)

TaskLike = Task | str


@dataclass(frozen=True)
class Selection:
    """Which jobs a test run takes: its backends, and some tasks or queues."""

    backends: tuple[JobsBackend, ...]
    tasks: frozenset[str] | None = None
    queues: tuple[str, ...] | None = None

    @classmethod
    def of(
        cls,
        tasks: Iterable[TaskLike] | None = None,
        queues: Iterable[str] | None = None,
        backend: str | None = None,
    ) -> Selection:
        return cls(
            backends=jobs_backends(backend),
            tasks=None if tasks is None else frozenset(map(task_path, tasks)),
            queues=None if queues is None else tuple(queues),
        )

    def takes(self, task_path: str, queue_name: str) -> bool:
        return (self.tasks is None or task_path in self.tasks) and (
            self.queues is None or queue_name in self.queues
        )

    def serves(self, alias: str) -> bool:
        return any(backend.alias == alias for backend in self.backends)


def task_path(task: TaskLike) -> str:
    if isinstance(task, Task):
        return task.module_path
    if isinstance(task, str) and task:
        return task
    raise TypeError(f"tasks: expected Task objects or dotted paths, got {task!r}.")


def jobs_backends(alias: str | None) -> tuple[JobsBackend, ...]:
    """The backend named ``alias``, or every django-jobs backend in TASKS."""
    if alias is not None:
        backend = task_backends[alias]
        if not isinstance(backend, JobsBackend):
            raise TypeError(f"TASKS[{alias!r}] is not a django_jobs backend.")
        return (backend,)
    found = tuple(
        task_backends[name]
        for name in settings.TASKS
        if isinstance(task_backends[name], JobsBackend)
    )
    if not found:
        raise TypeError("No backend in TASKS is django_jobs.backend.JobsBackend.")
    return found


class Runner:
    """Claims and runs the jobs of a selection, one at a time, in claim order."""

    def __init__(
        self, selection: Selection, *, delayed: bool, raise_errors: bool
    ) -> None:
        self.selection = selection
        self.delayed = delayed
        self.raise_errors = raise_errors

    def run_all(self, limit: int | None = None) -> list[TaskResult]:
        """Run jobs until none of the selection is due (or ``limit`` ran)."""
        results: dict[str, TaskResult] = {}
        ran = 0
        while limit is None or ran < limit:
            claimed = self.claim_next()
            if claimed is None:
                break
            ran += 1
            if limit is None and ran > RUNAWAY:
                raise RuntimeError(
                    f"run_jobs() ran {RUNAWAY} jobs and more are due: does a job "
                    "enqueue itself? Pass limit=N to run a fixed number."
                )
            result = self.run(*claimed)
            if result is not None:
                results[result.id] = result
        return list(results.values())

    def claim_next(
        self,
        only: Collection[int] | None = None,
        backends: Iterable[JobsBackend] | None = None,
        queues: Sequence[str] | None = None,
    ) -> tuple[JobsBackend, Job] | None:
        """Claim the next due job of the selection (or of the ids ``only``,
        from these ``backends`` and ``queues`` when the caller knows them)."""
        for backend in backends or self.selection.backends:
            self.prepare(backend, only)
            job = self.claim_from(backend, only, queues or self.selection.queues)
            if job is not None:
                return backend, job
        return None

    def prepare(self, backend: JobsBackend, only: Collection[int] | None) -> None:
        """Do what a worker's duties would: bury expired jobs, and, when asked
        to run delayed jobs, make them due now (``kick``)."""
        queue.expire(backend=backend.alias, using=backend.db)
        if not self.delayed:
            return
        waiting = Job.objects.using(backend.db).filter(
            backend=backend.alias, state=State.READY, run_at__gt=timezone.now()
        )
        if only is not None:
            waiting = waiting.filter(pk__in=only)
        ids = [
            pk
            for pk, path, name in waiting.values_list("pk", "task_path", "queue")
            if self.selection.takes(path, name)
        ]
        if ids:
            queue.kick(ids, using=backend.db)

    def claim_from(
        self,
        backend: JobsBackend,
        only: Collection[int] | None,
        queues: Sequence[str] | None,
    ) -> Job | None:
        """Claim the best due job that the selection takes.

        ``queue.claim`` picks by queue, in claim order. Jobs of other tasks
        (or other ids) that come first are claimed too, then given back with
        ``queue.release``, which does not count their attempt; so they stay
        ready, as a worker that stopped would leave them.
        """
        passed: list[Job] = []
        try:
            while True:
                claimed = queue.claim(
                    worker_id=TEST_WORKER_ID,
                    queues=queues,
                    limit=1,
                    backend=backend.alias,
                    using=backend.db,
                )
                if not claimed:
                    return None
                job = claimed[0]
                wanted = only is None or job.pk in only
                if wanted and self.selection.takes(job.task_path, job.queue):
                    return job
                passed.append(job)
        finally:
            for job in passed:
                queue.release(job.pk, token=job.claim_token, using=backend.db)

    # Running one job

    def run(self, backend: JobsBackend, job: Job) -> TaskResult | None:
        """Run a claimed job and record its outcome; return its TaskResult
        (None for a job buried unrun because its path names no Task)."""
        task = attempts.resolve(job.task_path)
        if not isinstance(task, Task):
            return self.record(backend, job, None, task)
        signal(task_started, backend, backend.result_for(job, task))
        holder = InProcessHolder(
            claim_token=job.claim_token, ttr=job.ttr, db=backend.db
        )
        token = running.set(self)
        try:
            with savepoints() as rolled_back:
                ended = attempts.run(
                    task,
                    job.pk,
                    list(job.args),
                    job.kwargs,
                    context=lambda: in_process_context(task, job, backend, holder),
                    workflow=job.workflow_id,
                    catching=(Exception, SystemExit),  # Ctrl-C stops the tests
                )
        finally:
            running.reset(token)
        if rolled_back and not ended.ok:
            holder.write_again()  # a worker's writes, undone with the job's
        return self.record(backend, job, task, ended)

    def record(
        self, backend: JobsBackend, job: Job, task: Task | None, ended: Ended
    ) -> TaskResult | None:
        """Write how the job ended, as a worker's supervisor does (with no
        import grace: a test has all its code already); raise its error if
        asked to."""
        deleted = None
        if ended.ok:
            token = job.claim_token
            queue.complete(
                job.pk, token=token, return_value=ended.value, using=backend.db
            )
        else:
            error = queue.attempt_error(
                job, ended.error["exception_class_path"], ended.error["traceback"]
            )
            if follows(ended.kind, import_grace_over=True) is Next.BURY:
                queue.bury_held(
                    job.pk, token=job.claim_token, error=error, using=backend.db
                )
            else:
                config = backend.config
                backoff = (config.RETRY_BACKOFF, config.RETRY_BACKOFF_MAX)
                failed = queue.fail(job, error, backoff=backoff, using=backend.db)
                deleted = error if failed.then is queue.Then.DELETED else None
        result = None
        if task is not None:
            result = finished(backend, job, task, deleted)
            signal(task_finished, backend, result)
        if self.raise_errors and ended.exception is not None:
            raise ended.exception
        return result


def in_process_context(
    task: Task, job: Job, backend: JobsBackend, holder: InProcessHolder
) -> JobContext:
    return JobContext(
        task_result=backend.result_for(job, task),
        job_id=job.pk,
        queue=job.queue,
        deadline=job.reserved_until,
        last_checkpoint=job.checkpoint,
        holder=holder,
        upstream=Upstream(job.pk, backend.alias),
    )


@contextlib.contextmanager
def savepoints() -> Iterator[list[str]]:
    """Keep a job's database error from breaking the test's transaction.

    Inside a transaction (a TestCase), a savepoint is taken on every
    connection in one. A job's writes are kept, failed or not, as in a
    worker, unless the job broke the transaction (a database error on
    PostgreSQL aborts it): then its writes are rolled back to the savepoint,
    so that the failure can be recorded and the test go on. Yields the
    aliases it rolled back.
    """
    taken = [
        (connection.alias, connection.savepoint())  # savepoint_create() on 6.1+
        for connection in connections.all(initialized_only=True)
        if connection.in_atomic_block
    ]
    rolled_back: list[str] = []
    try:
        yield rolled_back
    finally:
        for alias, savepoint in taken:
            try:
                transaction.savepoint_commit(savepoint, using=alias)
            except DatabaseError:
                transaction.savepoint_rollback(savepoint, using=alias)
                rolled_back.append(alias)


def finished(
    backend: JobsBackend,
    job: Job,
    task: Task,
    deleted_with: dict[str, Any] | None = None,
) -> TaskResult:
    """The job's TaskResult after its outcome was recorded (``deleted_with``:
    the error of a failure that deleted the row, on_failure="delete")."""
    if deleted_with is None:
        job.refresh_from_db(using=backend.db)
    else:  # the row is gone; tell its story anyway
        job.state, job.finished_at = State.BURIED, timezone.now()
        job.errors = [*job.errors, deleted_with]
    return backend.result_for(job, task)


def signal(sent, backend: JobsBackend, result: TaskResult) -> None:
    sent.send(type(backend), task_result=result)
