"""Exceptions raised by queue operations and recorded as job errors.

The first group is raised to callers: when a guarded update finds the job in a
state it may not leave that way, or when a name given (a queue, a backend's
alias, a schedule) cannot be used. The second group never propagates: they are
the exception classes recorded in a job's errors when an attempt ends without
a Python exception of its own (a timeout, a crash, a lost worker), so that
``TaskError.exception_class`` resolves to something meaningful.
"""

from __future__ import annotations

from django.db import DatabaseError


def class_path(cls: type) -> str:
    """The dotted path Django's TaskError expects for an exception class."""
    return f"{cls.__module__}.{cls.__qualname__}"


class JobError(Exception):
    """Base class for errors about a job's state."""


class NotRecorded(JobError):
    """What a running job asked (a touch, a checkpoint) was not written, and
    will not be.

    Raised by ``context.touch()`` and ``context.checkpoint()`` when the
    database refused the write (an error that waiting does not cure), or was
    unavailable once the job's reservation had already run out (the worker is
    stopping the job). While the reservation has time, a write the database
    cannot take is kept by the worker and made when it is back: the job goes
    on and is not told. The reservation is unchanged; a checkpoint saved
    before stays saved.
    """


class JobDoesNotExist(JobError):
    def __init__(self, job_id: int) -> None:
        super().__init__(f"Job {job_id} does not exist.")
        self.job_id = job_id


class InvalidTransition(JobError):
    """The job is not in a state the operation applies to."""

    def __init__(self, job_id: int, operation: str, state: str) -> None:
        super().__init__(f"Cannot {operation} job {job_id}: it is {state}.")
        self.job_id = job_id
        self.operation = operation
        self.state = state


class ClaimLost(JobError):
    """The caller's claim on a job is no longer valid.

    Raised when a worker acts on a job that was rescued (its reservation ran
    out or its worker was declared dead) and possibly claimed again since. The
    late writer must not overwrite the current holder's work.
    """

    def __init__(self, job_id: int, operation: str) -> None:
        super().__init__(
            f"Cannot {operation} job {job_id}: this claim on it was lost "
            "(the reservation expired or the job was rescued, cancelled or deleted)."
        )
        self.job_id = job_id
        self.operation = operation


class UnknownQueue(ValueError):
    """A queue name that nothing knows: not configured, no row, no job.

    Pausing it would create a queue that only exists to be paused: a typo
    left on the dashboard, while the queue meant goes on running.
    """

    def __init__(self, name: str, backend: str, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none yet"
        super().__init__(
            f"Unknown queue {name!r} in backend {backend!r}: it is not in "
            f"QUEUES and holds no job. Known queues: {listed}."
        )
        self.name = name
        self.backend = backend
        self.known = known


class InvalidBackendAlias(ValueError):
    """An alias that names no usable ``JobsBackend``: not a key of ``TASKS``,
    another kind of backend, or one whose ``OPTIONS`` are invalid.

    Raised by ``django_jobs.backend.jobs_backend``, which commands, the admin
    and scripts call with an alias a person typed. A ``ValueError`` (what it
    raised before it had a class of its own), not ``ImproperlyConfigured``:
    the project's settings may be right and the alias wrong, and callers that
    catch ``ValueError`` to say so in one line keep doing so.
    """

    def __init__(self, alias: str, why: str) -> None:
        super().__init__(why)
        self.alias = alias


class InvalidSchedule(ValueError):
    """A schedule whose cron expression, time zone or task cannot be used.

    Also importable as ``django_jobs.schedules.InvalidSchedule``.
    """


# Recorded as job errors; never raised by django_jobs itself.


class JobTimeout(TimeoutError):
    """The job ran past its time to run (ttr) and was killed."""


class MemoryLimitExceeded(MemoryError):
    """The job's processes used more resident memory than its limit and
    were killed."""


class CPULimitExceeded(RuntimeError):
    """The job's processes used more CPU time than its limit and were killed."""


class ChildCrashed(RuntimeError):
    """The process running the job exited without reporting an outcome."""


class ReservationExpired(TimeoutError):
    """The job's reservation ran out while no worker was watching it."""


class WorkerLost(RuntimeError):
    """The worker holding the job stopped sending heartbeats."""


class TaskNotFound(ImportError):
    """The job's task path does not name a django.tasks.Task."""


class TaskNeverImportable(TaskNotFound):
    """The job's task path can never be imported by a worker, after any deploy.

    It is not a dotted path, or it names a module that exists only in the
    process that defined the task: ``__main__`` (a script run directly, a
    notebook), an interactive interpreter, ``manage.py shell``. The rule is
    ``django_jobs.task.never_importable``. Such a job is buried at once:
    waiting out ``IMPORT_GRACE`` could not help.
    """


class TaskNotImportable(TaskNotFound):
    """The job's task path cannot be imported in this worker (yet).

    Retried for ``IMPORT_GRACE`` seconds before the job is buried: during a
    rolling deploy, web servers with the new code enqueue jobs that workers
    still running the old code cannot import.
    """


class JobCancelled(Exception):
    """Someone asked for the job to be stopped."""


class UpstreamFailed(RuntimeError):
    """A job it waited for failed for good: it was not run (workflows).

    Retrying that job puts this one back to waiting.
    """


class WorkflowDeadlineMissed(TimeoutError):
    """Its workflow's deadline passed before it finished."""


class InvalidDependency(ValueError):
    """An ``after()`` that cannot hold: a job that does not exist, belongs to
    another backend, or waits (directly or not) for the job that would wait
    for it."""


class InvalidWorkflow(ValueError):
    """A workflow that cannot be started or joined: a name too long, a
    deadline in the past, a workflow of another backend or already ended."""


class JobExpired(TimeoutError):
    """The job was not started before its deadline (``expires``)."""


class InvalidJobRow(ValueError):
    """The job's row cannot be run as it is (written by hand, or damaged)."""


class OutcomeNotStored(RuntimeError):
    """The database refused to store what the job's attempt ended with."""


class ReturnValueNotStored(OutcomeNotStored, TypeError):
    """The job's task returned a value that cannot be stored as JSON.

    The task ran to its end, so its work (an email sent, a charge made) is
    done: the job is buried at once, whatever its ``max_attempts``, rather
    than run again. The message names the type and what to return instead
    (``str()`` of a ``Decimal`` or ``UUID``, ``isoformat()`` of a datetime,
    a model instance's pk). A ``TypeError`` too, as the value's type is the
    problem.
    """


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error: the driver's error that Django's
    wraps (psycopg's ``sqlstate``, or ``pgcode``), or the error itself if it
    is the driver's. None for SQLite, which has none."""
    cause = exc.__cause__ or exc
    return getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)


class NotMigrated(DatabaseError):
    """django-jobs' tables (or columns a newer version added) are missing from
    the database: ``manage.py migrate`` has not run there (since an upgrade)."""

    def __init__(self, db: str, said: str) -> None:
        command = "manage.py migrate" + ("" if db == "default" else f" --database {db}")
        super().__init__(
            f"database {db!r} is missing django-jobs' migrations ({said}): "
            f"run '{command}'."
        )
        self.db = db
