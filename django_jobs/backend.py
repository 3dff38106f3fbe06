"""The django.tasks backend: application code enqueues with Django's ``@task``.

``JobsBackend`` validates tasks and arguments in the caller's process, writes
the job row in the caller's transaction and builds ``TaskResult`` objects back
from rows. It never runs anything: ``manage.py runworker`` does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from inspect import iscoroutinefunction
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.tasks import Task, TaskResult, TaskResultStatus
from django.tasks.backends.base import BaseTaskBackend
from django.tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, TaskError
from django.tasks.exceptions import InvalidTask, TaskResultDoesNotExist
from django.tasks.signals import task_enqueued
from django.utils import timezone
from django.utils.inspect import get_func_args, is_module_level_function
from django.utils.module_loading import import_string

from . import arguments
from .conf import ON_FAILURE_CHOICES, JobsOptions
from .states import State, task_status

if TYPE_CHECKING:
    from .models import Job

Call = tuple[Sequence[Any], Mapping[str, Any]]


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTask(Task):
    """A django.tasks ``Task`` with the options of a django-jobs job.

    ``None`` means "the backend's default" (``OPTIONS``), so that changing a
    default in settings reaches every task that did not choose for itself.
    """

    #: Seconds the job may run before its worker kills it (time to run).
    ttr: int | None = None
    #: Attempts before the job is buried (or deleted, see ``on_failure``).
    max_attempts: int | None = None
    #: What to do with a job whose last attempt failed: "bury" or "delete".
    on_failure: str | None = None

    def using(
        self,
        *,
        priority: int | None = None,
        queue_name: str | None = None,
        run_after: datetime | timedelta | None = None,
        backend: str | None = None,
        ttr: int | None = None,
        max_attempts: int | None = None,
        on_failure: str | None = None,
    ) -> JobTask:
        """A copy of this task with some options changed for one enqueue."""
        changes = {
            name: value
            for name, value in (
                ("priority", priority),
                ("queue_name", queue_name),
                ("run_after", run_after),
                ("backend", backend),
                ("ttr", ttr),
                ("max_attempts", max_attempts),
                ("on_failure", on_failure),
            )
            if value is not None
        }
        return replace(self, **changes)

    def enqueue_many(self, calls: Iterable[Call]) -> list[TaskResult]:
        """Enqueue one job per ``(args, kwargs)`` pair, in one statement.

        All of them or none: the jobs are written together, in the caller's
        transaction if there is one.
        """
        return self.get_backend().enqueue_many(self, calls)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult(TaskResult):
    """A TaskResult whose arguments are already plain JSON.

    They were checked on enqueue or read back from a JSON column, so the
    normalisation that TaskResult repeats on every construction is skipped:
    it was the largest cost of a bulk enqueue.
    """

    def __post_init__(self) -> None:
        pass


class JobsBackend(BaseTaskBackend):
    task_class = JobTask
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    @cached_property
    def config(self) -> JobsOptions:
        """The parsed ``OPTIONS``; ImproperlyConfigured if they are wrong."""
        return JobsOptions.from_dict(self.options)

    @property
    def db(self) -> str:
        from . import queue

        return queue.get_db(self.config.DATABASE)

    # Validation

    def validate_task(self, task: Task) -> None:
        """Refuse a task this backend cannot run, with a message that names it.

        Called when the task is declared, on every ``using()`` and again on
        enqueue, so a task is checked against the settings in force.
        """
        path = f"{task.func.__module__}.{task.func.__qualname__}"

        def invalid(message: str) -> InvalidTask:
            return InvalidTask(f"Task {path!r}: {message}")

        if not is_module_level_function(task.func):
            raise invalid(
                "a task function must be defined at module level, so that a "
                "worker can import it by its dotted path."
            )
        if iscoroutinefunction(task.func) and not self.supports_async_task:
            raise invalid("this backend does not run async tasks.")
        if task.takes_context and get_func_args(task.func)[:1] != ["context"]:
            raise invalid("takes_context=True needs 'context' as the first argument.")
        priority = task.priority
        if (
            isinstance(priority, bool)
            or not isinstance(priority, int)
            or not TASK_MIN_PRIORITY <= priority <= TASK_MAX_PRIORITY
        ):
            raise invalid(
                f"priority must be a whole number between {TASK_MIN_PRIORITY} "
                f"and {TASK_MAX_PRIORITY}, got {priority!r}."
            )
        self._validate_run_after(task.run_after, invalid)
        if self.queues and task.queue_name not in self.queues:
            raise invalid(
                f"queue {task.queue_name!r} is not one of this backend's QUEUES "
                f"({', '.join(sorted(self.queues))})."
            )
        for name in ("ttr", "max_attempts"):
            value = getattr(task, name, None)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise invalid(f"{name} must be a positive whole number, got {value!r}.")
        on_failure = getattr(task, "on_failure", None)
        if on_failure is not None and on_failure not in ON_FAILURE_CHOICES:
            raise invalid(
                f"on_failure must be one of {', '.join(ON_FAILURE_CHOICES)}, "
                f"got {on_failure!r}."
            )

    @staticmethod
    def _validate_run_after(run_after: Any, invalid) -> None:
        if run_after is None:
            return
        if isinstance(run_after, timedelta):
            if run_after < timedelta(0):
                raise invalid(
                    f"run_after must not be a negative delay, got {run_after!r}."
                )
        elif isinstance(run_after, datetime):
            if settings.USE_TZ and timezone.is_naive(run_after):
                raise invalid(
                    "run_after must be an aware datetime when USE_TZ is True "
                    f"(got the naive {run_after.isoformat()})."
                )
        else:
            raise invalid(
                "run_after must be a datetime or a timedelta (a delay from now), "
                f"got {run_after!r}."
            )

    def prepare_call(
        self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> tuple[list[Any], dict[str, Any]]:
        """Check that a call fits the task and can be stored; return it as JSON."""
        path = task.module_path
        arguments.bind(task.func, path, args, kwargs, takes_context=task.takes_context)
        return (
            arguments.to_json(list(args), path, "args"),
            arguments.to_json(dict(kwargs), path, "kwargs"),
        )

    # Enqueue

    def enqueue(
        self, task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> TaskResult:
        return self.enqueue_many(task, [(args, kwargs)])[0]

    def enqueue_many(self, task: Task, calls: Iterable[Call]) -> list[TaskResult]:
        """Check every call, then write all the jobs in one statement."""
        from . import queue

        self.validate_task(task)
        prepared = []
        for call in calls:
            try:
                args, kwargs = call
            except (TypeError, ValueError):
                raise TypeError(
                    f"Task {task.module_path!r}: enqueue_many() takes (args, kwargs) "
                    f"pairs, got {call!r}."
                ) from None
            prepared.append(self.prepare_call(task, args, kwargs))
        if not prepared:
            return []
        inserted = queue.insert(prepared, **self.job_fields(task), using=self.db)
        results = []
        for job_id, (args, kwargs) in zip(inserted.ids, prepared, strict=True):
            result = JobResult(
                task=task,
                id=str(job_id),
                status=TaskResultStatus.READY,
                enqueued_at=inserted.enqueued_at,
                started_at=None,
                finished_at=None,
                last_attempted_at=None,
                args=args,
                kwargs=kwargs,
                backend=self.alias,
                errors=[],
                worker_ids=[],
            )
            task_enqueued.send(type(self), task_result=result)
            results.append(result)
        return results

    def job_fields(self, task: Task) -> dict[str, Any]:
        """The columns of a job for ``task``, defaults filled in from OPTIONS."""
        config = self.config
        run_after = task.run_after
        if isinstance(run_after, timedelta):
            run_after = timezone.now() + run_after
        return {
            "task_path": task.module_path,
            "queue": task.queue_name,
            "priority": task.priority,
            "run_at": run_after,
            "ttr": getattr(task, "ttr", None) or config.DEFAULT_TTR,
            "max_attempts": getattr(task, "max_attempts", None)
            or config.DEFAULT_MAX_ATTEMPTS,
            "on_failure": getattr(task, "on_failure", None)
            or config.DEFAULT_ON_FAILURE,
            "backend": self.alias,
        }

    # Results

    def get_result(self, result_id: str) -> TaskResult:
        from .models import Job

        try:
            job_id = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        job = Job.objects.using(self.db).filter(pk=job_id, backend=self.alias).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return self.result_for(job)

    def result_for(self, job: Job, task: Task | None = None) -> TaskResult:
        """A TaskResult that tells the story of ``job``'s row."""
        if task is None:
            task = self.task_for(job)
        result = JobResult(
            task=task,
            id=str(job.pk),
            status=task_status(job.state),
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.last_attempted_at,
            args=job.args,
            kwargs=job.kwargs,
            backend=self.alias,
            errors=[
                TaskError(
                    exception_class_path=error["exception_class_path"],
                    traceback=error["traceback"],
                )
                for error in job.errors
            ],
            worker_ids=list(job.worker_ids),
        )
        if job.state == State.DONE:
            object.__setattr__(result, "_return_value", job.return_value)
        return result

    def task_for(self, job: Job) -> Task:
        """Rebuild the Task a job was enqueued with, from its dotted path."""
        task = import_string_or_none(job.task_path)
        if not isinstance(task, Task):
            raise InvalidTask(
                f"Job {job.pk} names {job.task_path!r}, which is not a Task "
                "(it was renamed or removed, or the row was written by hand)."
            )
        changes: dict[str, Any] = {}
        if task.priority != job.priority:
            changes["priority"] = job.priority
        if task.queue_name != job.queue:
            changes["queue_name"] = job.queue
        if task.backend != self.alias:
            changes["backend"] = self.alias
        if job.run_at != job.enqueued_at:
            changes["run_after"] = job.run_at
        defaults = self.job_fields(task)
        for name in ("ttr", "max_attempts", "on_failure"):
            if defaults[name] != getattr(job, name) and hasattr(task, name):
                changes[name] = getattr(job, name)
        return replace(task, **changes) if changes else task

    # Checks

    def check(self, **kwargs: Any) -> list:
        from .checks import check_backend

        return check_backend(self)


def import_string_or_none(path: str) -> Any:
    try:
        return import_string(path)
    except ImportError:
        return None
