"""One attempt at a job, wherever it runs, and what follows when it fails.

A worker's child runs jobs this way, and so do the test helpers
(``django_jobs.testing``), which run them in the test's own process: resolve
the task from the job's path, call it with its arguments (and its context),
turn what it returned into what can be stored, or describe how it failed.
What happens to a failed job next (``follows``) is decided here too, so the
worker and the tests cannot drift apart.
"""

from __future__ import annotations

import enum
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .compat import Task
from .context import JobContext
from .exceptions import (
    ReturnValueNotStored,
    TaskNotFound,
    TaskNotImportable,
    class_path,
)
from .returns import stored_return_value
from .scope import running_job
from .task import task_at


class Kind(enum.Enum):
    """How an attempt failed; it decides what follows (``follows``) and how
    the worker's log line reads."""

    #: The task raised (any exception, SystemExit included).
    RAISED = "failed"
    #: It ran past its reservation and was killed.
    TIMED_OUT = "timed out"
    #: It used more memory or CPU time than its limit and was killed.
    OVER_LIMIT = "over its limit"
    #: Its process ended without reporting an outcome.
    CRASHED = "crashed"
    #: Someone cancelled it while it ran.
    CANCELLED = "cancelled"
    #: Its path names something that is not a Task: it is never called.
    NOT_A_TASK = "unrunnable"
    #: Its path does not import here (yet): tried again for a while.
    NOT_IMPORTABLE = "not importable"
    #: It ran to its end and returned what cannot be stored (not JSON).
    UNSTORABLE = "returned what cannot be stored"

    @classmethod
    def from_child(cls, name: object) -> Kind:
        """The kind a child's outcome names (``kind.name``); a child can only
        report how its job ended, never a timeout, crash or cancellation."""
        kind = cls.__members__.get(str(name), cls.RAISED)
        return kind if kind in _REPORTED else cls.RAISED

    @property
    def attempted(self) -> bool:
        """Whether the task ran (and ``task_finished`` is sent)."""
        return self not in (Kind.NOT_A_TASK, Kind.NOT_IMPORTABLE)


#: The kinds a job's own run can end with (the others, the supervisor tells).
_REPORTED = frozenset(
    (Kind.RAISED, Kind.NOT_A_TASK, Kind.NOT_IMPORTABLE, Kind.UNSTORABLE)
)


class Next(enum.Enum):
    """What follows a failed attempt."""

    #: Counted against ``max_attempts``: tried again after a backoff, or
    #: buried (or deleted) when none are left (``queue.fail`` decides).
    RETRY = "retry"
    #: Buried at once: another attempt could not do better (or, for a value
    #: that cannot be stored, would do the job's work again).
    BURY = "bury"
    #: Tried again soon, uncounted: a deploy may bring its task.
    WAIT_FOR_DEPLOY = "wait for a deploy"


def follows(kind: Kind, *, import_grace_over: bool) -> Next:
    """What follows a failure of this kind (``import_grace_over``: a task
    that does not import has waited long enough for a deploy)."""
    if kind is Kind.NOT_IMPORTABLE:
        return Next.BURY if import_grace_over else Next.WAIT_FOR_DEPLOY
    if kind in (Kind.CANCELLED, Kind.NOT_A_TASK, Kind.UNSTORABLE):
        return Next.BURY
    return Next.RETRY


@dataclass(frozen=True, slots=True)
class Ended:
    """How one run of a job ended: what it returned, or how and why it failed."""

    #: None: it returned ``value`` (as it is stored).
    kind: Kind | None
    value: Any = None
    #: ``exception_class_path`` and ``traceback``, as django.tasks keeps errors.
    error: dict[str, str] | None = None
    #: What it raised (kept in the process that ran it, for the test helpers).
    exception: BaseException | None = None
    #: How long the task ran.
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.kind is None


def resolve(path: str) -> Task | Ended:
    """The Task at ``path``, or how and why there is none.

    ``Kind.NOT_IMPORTABLE`` may go away (a deploy in progress);
    ``Kind.NOT_A_TASK`` names something that is no Task, or a path that no
    worker can ever import (``TaskNeverImportable``), and never will be.
    """
    try:
        return task_at(path)
    except TaskNotImportable as exc:
        why = exc.__cause__ or exc
        cause = f"{type(why).__name__}: {why}".splitlines()[0]
        error = {
            "exception_class_path": class_path(TaskNotImportable),
            "traceback": (
                f"{TaskNotImportable.__name__}: {exc} in this worker ({cause}). A "
                "deploy may be in progress, or this worker runs older code than "
                "the code that enqueued the job.\n\n" + describe(why)["traceback"]
            ),
        }
        return Ended(Kind.NOT_IMPORTABLE, error=error, exception=exc)
    except TaskNotFound as exc:  # TaskNeverImportable too
        return Ended(Kind.NOT_A_TASK, error=error_of(exc), exception=exc)


def run(
    task: Task,
    job_id: int,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    context: Callable[[], JobContext] | None = None,
    workflow: int | None = None,
    catching: type[BaseException] | tuple[type[BaseException], ...] = BaseException,
) -> Ended:
    """Call ``task`` with a job's arguments (its context first, if it takes
    one), as the job ``job_id`` (of ``workflow``): see ``scope.running_job``
    for what the jobs it enqueues belong to. Every ending in ``catching`` is
    an outcome."""
    started = time.perf_counter()
    try:
        with running_job(job_id, workflow):
            value = task.call(*_arguments(task, args, context), **kwargs)
    except catching as exc:
        return _took(started, raised(exc))
    return _took(started, returned(value, task.module_path))


async def arun(
    task: Task,
    job_id: int,
    args: list[Any],
    kwargs: dict[str, Any],
    *,
    context: Callable[[], JobContext] | None = None,
    workflow: int | None = None,
    catching: type[BaseException] | tuple[type[BaseException], ...] = BaseException,
) -> Ended:
    """``run``, awaited (``task.acall``): how a job of the async lane runs,
    in the scope of its own asyncio task. A cancellation (``CancelledError``,
    in ``catching`` by default) ends it as any exception does; only the
    coroutine's own closing (``GeneratorExit``) is let through."""
    started = time.perf_counter()
    try:
        with running_job(job_id, workflow):
            value = await task.acall(*_arguments(task, args, context), **kwargs)
    except GeneratorExit:
        raise
    except catching as exc:
        return _took(started, raised(exc))
    return _took(started, returned(value, task.module_path))


def _arguments(
    task: Task, args: list[Any], context: Callable[[], JobContext] | None
) -> list[Any]:
    """A job's positional arguments, its context first if its task takes one
    (built inside the job's scope: building it may read the database)."""
    return [context(), *args] if task.takes_context else args


def _took(started: float, ended: Ended) -> Ended:
    """``ended``, with the seconds since ``started`` (the task's run)."""
    seconds = time.perf_counter() - started
    return Ended(ended.kind, ended.value, ended.error, ended.exception, seconds)


def raised(exc: BaseException) -> Ended:
    """A job whose task raised ``exc`` (a failure that is retried)."""
    return Ended(Kind.RAISED, error=describe(exc), exception=exc)


def returned(value: Any, task_path: str) -> Ended:
    """A job that returned ``value``: done, or, if the value cannot be
    stored, a failure that buries the job (its work was done)."""
    try:
        return Ended(None, stored_return_value(value, task_path))
    except ReturnValueNotStored as exc:
        return Ended(Kind.UNSTORABLE, error=error_of(exc), exception=exc)


def describe(exc: BaseException) -> dict[str, str]:
    """An error as django.tasks keeps it; never fails, whatever ``exc`` is."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception as failure:  # an exception too odd to format
        text = f"{type(exc).__qualname__} (its traceback could not be formatted: "
        text += f"{type(failure).__name__})\n"
    return {"exception_class_path": class_path(type(exc)), "traceback": text}


def error_of(exc: Exception) -> dict[str, str]:
    """An error of ours, in its own words: the traceback would show only
    django_jobs' frames, which say nothing about the job."""
    cls = type(exc)
    return {
        "exception_class_path": class_path(cls),
        "traceback": f"{cls.__name__}: {exc}\n",
    }
