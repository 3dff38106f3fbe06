"""The django.tasks backend: application code enqueues with Django's ``@task``.

``JobsBackend`` validates tasks and arguments in the caller's process, writes
the job row in the caller's transaction and builds ``TaskResult`` objects back
from rows. It never runs anything: ``manage.py runworker`` does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

from . import arguments
from .compat import (
    BaseTaskBackend,
    InvalidTask,
    InvalidTaskBackend,
    Task,
    TaskError,
    TaskResult,
    TaskResultDoesNotExist,
    TaskResultStatus,
    task_backends,
    task_enqueued,
)
from .conf import JobsOptions
from .exceptions import InvalidBackendAlias, InvalidDependency, TaskNotFound
from .hook_calls import Hooks, configured
from .hooks import Enqueue
from .limit_keys import limit_key_of
from .scope import (
    After,
    current_after,
    current_batch,
    current_job,
    current_step,
    current_workflow,
)
from .states import State, task_status
from .task import Call, JobTask, job_limits, job_result, task_at
from .validation import check_importable, validate_task

if TYPE_CHECKING:
    from .models import Job


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

    @cached_property
    def hooks(self) -> Hooks:
        """The hooks around every job (django_jobs.hooks), tracing first."""
        return Hooks(configured(self.config), self.config.HOOK_TIMEOUT)

    @property
    def db(self) -> str:
        from . import queue

        return queue.get_db(self.config.DATABASE)

    # Validation

    def validate_task(self, task: Task) -> None:
        """Refuse a task this backend cannot run.

        Our checks first (django_jobs.validation: stricter, and naming the
        task), then Django's own, so that what Django adds is checked too
        (not for a ``run_after`` delay, which Django does not know).
        """
        validate_task(self, task)
        if isinstance(task.run_after, timedelta):
            return  # a delay is ours (Django knows only times): checked above
        try:
            super().validate_task(task)
        except InvalidTask as exc:
            raise InvalidTask(f"Task {task.module_path!r}: {exc}") from None

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
        try:
            from . import queue
            from .models import Job
        except RuntimeError:
            self.require_app()
            raise

        self.validate_task(task)
        check_importable(task)
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
        columns = self.job_columns(task)
        unique_keys = self.unique_keys(task, prepared)
        if (after := columns["after"]) is not None:
            self.check_after(after)
        if unique_keys and columns["after"] is not None:
            raise TypeError(
                f"Task {task.module_path!r}: a unique job cannot wait for other "
                "jobs (after()): the job already waiting may wait for others."
            )
        limit_keys = self.limit_keys(task, prepared)
        hooks = self.hooks
        enqueue = None
        if hooks.enqueue:
            enqueue = Enqueue(
                task, self.alias, columns["queue"], columns["priority"],
                columns["ttr"], len(prepared),
            )  # fmt: skip
            hooks.before_enqueue(enqueue)
        try:
            inserted = queue.insert(
                prepared, **columns, unique_keys=unique_keys,
                limit_keys=limit_keys,
                trace_context=enqueue.trace_context if enqueue else None,
                using=self.db,
            )  # fmt: skip
        except BaseException as exc:
            if enqueue is not None:
                enqueue.error = exc
                hooks.after_enqueue(enqueue)
            raise
        if enqueue is not None:
            enqueue.ids = inserted.ids
            hooks.after_enqueue(enqueue)
        # Unique calls that found their job already waiting return that job;
        # in the common case every job is new and this costs no query at all.
        ids, created = inserted.ids, inserted.created
        waiting = [pk for pk, new in zip(ids, created, strict=True) if not new]
        existing = Job.objects.using(self.db).in_bulk(waiting) if waiting else {}
        results = []
        for job_id, new, (args, kwargs) in zip(ids, created, prepared, strict=True):
            if not new:  # a unique job already waiting: its own result
                results.append(self.result_for(existing[job_id], task))
                continue
            result = job_result(
                task,
                job_id,
                TaskResultStatus.READY,
                backend=self.alias,
                args=args,
                kwargs=kwargs,
                enqueued_at=inserted.enqueued_at,
            )
            task_enqueued.send(type(self), task_result=result)
            results.append(result)
        return results

    def check_after(self, after: After) -> None:
        """A job waits only for jobs of this backend: an id means a row of
        this backend's database, and another backend's may live elsewhere."""
        for job_id, alias in zip(after.ids, after.backends, strict=False):
            if alias is not None and alias != self.alias:
                raise InvalidDependency(
                    f"after(): job {job_id} belongs to backend {alias!r}, not "
                    f"{self.alias!r}: a job can only wait for jobs of its own "
                    "backend (and database)."
                )

    def job_columns(self, task: Task) -> dict[str, Any]:
        """The columns of a job for ``task``, defaults filled in from OPTIONS."""
        config = self.config
        now = timezone.now()
        run_at = task.run_after
        if isinstance(run_at, timedelta):
            run_at = now + run_at
        expires = getattr(task, "expires", None)
        if isinstance(expires, int | float):
            expires = timedelta(seconds=expires)
        if isinstance(expires, timedelta):
            expires = (run_at or now) + expires
        return {
            "task_path": task.module_path,
            "queue": task.queue_name,
            "priority": task.priority,
            "run_at": run_at,
            "ttr": getattr(task, "ttr", None) or config.DEFAULT_TTR,
            "max_attempts": getattr(task, "max_attempts", None)
            or config.DEFAULT_MAX_ATTEMPTS,
            "on_failure": getattr(task, "on_failure", None)
            or config.DEFAULT_ON_FAILURE,
            "expires_at": expires,
            **job_limits(task),
            "backend": self.alias,
            "parent": current_job.get(),
            "batch": current_batch.get(),
            "workflow": current_workflow.get(),
            "after": current_after.get(),
            "step": current_step.get(),
        }

    @staticmethod
    def unique_keys(task: Task, calls: list[tuple[list, dict]]) -> list[str] | None:
        """Each call's unique key, or None when the task's jobs are not unique.

        An explicit ``unique_key`` is scoped to the task; ``unique=True`` keys
        a job by its task and arguments.
        """
        key = getattr(task, "unique_key", None)
        if key:
            return [f"{task.module_path}:{key}"[:255]] * len(calls)
        if not getattr(task, "unique", None):
            return None
        return [
            hashlib.sha256(
                json.dumps([task.module_path, args, kwargs], sort_keys=True).encode()
            ).hexdigest()
            for args, kwargs in calls
        ]

    @staticmethod
    def limit_keys(task: Task, calls: list[tuple[list, dict]]) -> list[str] | None:
        """Each call's key for the limits per key, or None when the task
        names no ``limit_key`` (TypeError or ValueError for a bad value)."""
        if getattr(task, "limit_key", None) is None:
            return None
        return [limit_key_of(task, args, kwargs) for args, kwargs in calls]

    # Results

    def get_result(self, result_id: str) -> TaskResult:
        try:
            from .models import Job
        except RuntimeError:
            self.require_app()
            raise

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
        result = job_result(
            task,
            job.pk,
            task_status(job.state),
            backend=self.alias,
            args=job.args,
            kwargs=job.kwargs,
            enqueued_at=job.enqueued_at,
            started_at=job.started_at,
            finished_at=job.finished_at,
            last_attempted_at=job.last_attempted_at,
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
        try:
            task = task_at(job.task_path)
        except TaskNotFound:
            raise InvalidTask(
                f"Job {job.pk} names {job.task_path!r}, which is not a Task "
                "(it was renamed or removed, or the row was written by hand)."
            ) from None
        changes: dict[str, Any] = {}
        if task.priority != job.priority:
            changes["priority"] = job.priority
        if task.queue_name != job.queue:
            changes["queue_name"] = job.queue
        if task.backend != self.alias:
            changes["backend"] = self.alias
        if job.run_at != job.enqueued_at:
            changes["run_after"] = job.run_at
        defaults = self.job_columns(task)
        for name in ("ttr", "max_attempts", "on_failure"):
            if defaults[name] != getattr(job, name) and hasattr(task, name):
                changes[name] = getattr(job, name)
        return replace(task, **changes) if changes else task

    # Checks

    def check(self, **kwargs: Any) -> list:
        from .checks import check_backend

        return check_backend(self)

    def require_app(self) -> None:
        """Raise ImproperlyConfigured, in check E001's words, if the app is missing.

        Called when our models fail to import, so that the first enqueue of a
        project that forgot INSTALLED_APPS says so instead of Django's
        "Model class ... isn't in an application in INSTALLED_APPS".
        """
        from .checks import APP_MISSING_HINT, app_missing

        missing = app_missing(self)
        if missing:
            raise ImproperlyConfigured(f"{missing} {APP_MISSING_HINT}") from None


def jobs_backend(alias: str) -> JobsBackend:
    """The ``JobsBackend`` at ``TASKS[alias]``, with its ``OPTIONS`` parsed.

    Commands, the admin and the console take an alias from a person; they
    refuse a wrong one with the same words, an ``InvalidBackendAlias`` (a
    ValueError, see its docstring), instead of a traceback later on.
    """
    try:
        backend = task_backends[alias]
    except InvalidTaskBackend:
        why = f"{alias!r} is not a key of the TASKS setting."
        raise InvalidBackendAlias(alias, why) from None
    if not isinstance(backend, JobsBackend):
        kind = f"{type(backend).__module__}.{type(backend).__qualname__}"
        why = f"{alias!r} is {kind}, not django_jobs.backend.JobsBackend."
        raise InvalidBackendAlias(alias, why)
    try:
        backend.config  # noqa: B018  (parse OPTIONS now, to fail early)
    except ImproperlyConfigured as exc:
        why = f"TASKS[{alias!r}]['OPTIONS'] is invalid: {exc}"
        raise InvalidBackendAlias(alias, why) from None
    return backend
