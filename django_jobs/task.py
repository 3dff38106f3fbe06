"""The Task class of the backend: Django's Task with the options of a job.

``@task(...)`` from ``django.tasks`` builds one of these when the backend is
a JobsBackend (Django 6.1 forwards unknown keyword arguments to the backend's
``task_class``), and ``.using(...)`` accepts the same options per enqueue.
"""

from __future__ import annotations

import importlib
import keyword
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.utils.module_loading import import_string

from .compat import TASKS_MODULE, Task, TaskResult, TaskResultStatus
from .exceptions import TaskNeverImportable, TaskNotFound, TaskNotImportable
from .sizes import parse_size

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
    #: While a job with the same task and arguments waits or runs, enqueuing
    #: again returns that job instead of a new one.
    unique: bool | None = None
    #: Like ``unique``, but jobs are the same when they share this key.
    unique_key: str | None = None
    #: The job is not worth starting after this: seconds or a timedelta after
    #: ``run_after`` (or the enqueue), or an aware datetime.
    expires: float | timedelta | datetime | None = None
    #: The parameter whose value is the job's key: the queue's limits per key
    #: hold for each value (docs/limits.rst).
    limit_key: str | None = None
    #: Resident memory its process tree may use (bytes, or "512MB", "1GiB":
    #: see ``django_jobs.sizes``); over it, the worker kills the job's process
    #: and the attempt fails (``MemoryLimitExceeded``).
    max_memory: int | str | None = None
    #: CPU seconds its process tree may use (``CPULimitExceeded``).
    max_cpu_seconds: float | None = None

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
        unique: bool | None = None,
        unique_key: str | None = None,
        expires: float | timedelta | datetime | None = None,
        limit_key: str | None = None,
        max_memory: int | str | None = None,
        max_cpu_seconds: float | None = None,
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
                ("unique", unique),
                ("unique_key", unique_key),
                ("expires", expires),
                ("limit_key", limit_key),
                ("max_memory", max_memory),
                ("max_cpu_seconds", max_cpu_seconds),
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


def job_limits(task: Task) -> dict[str, Any]:
    """The limits a job of ``task`` carries in its row: the task's own
    (checked by ``validation``), in bytes and seconds; None where it has none."""
    memory = getattr(task, "max_memory", None)
    cpu = getattr(task, "max_cpu_seconds", None)
    return {
        "max_memory": None if memory is None else parse_size(memory),
        "max_cpu_seconds": None if cpu is None else float(cpu),
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class JobResult(TaskResult):
    """A TaskResult whose arguments are already plain JSON.

    They were checked on enqueue or read back from a JSON column, so the
    normalisation that TaskResult repeats on every construction is skipped:
    it was the largest cost of a bulk enqueue.
    """

    def __post_init__(self) -> None:
        pass


#: Modules that are a running program rather than a file: what a script
#: run directly, a notebook or an interactive interpreter defines. A worker's
#: own ``__main__`` is ``manage.py``.
PROGRAM_MODULES = frozenset({"__main__", "__mp_main__", "__console__"})
#: What ``manage.py shell -c`` and input piped into ``manage.py shell``
#: define is named after the shell command's module, which does not hold it.
SHELL_MODULE = "django.core.management.commands.shell"


def never_importable(path: str) -> str | None:
    """Why no worker can import ``path``, after any deploy; None if one may.

    The rule: the path is not a dotted path (two names or more, each an
    identifier and no keyword: so no ``<locals>``, ``<lambda>``, spaces, nor
    the ``None.f`` of a function typed at ``manage.py shell``'s prompt); or
    its first name is one of ``PROGRAM_MODULES``; or it lies in the shell
    command's module. Any other path that does not import (a module or a name
    missing) may arrive with a deploy.
    """
    names = path.split(".") if isinstance(path, str) else []
    if len(names) < 2 or not all(_name(name) for name in names):
        return "it is not a dotted path to a module-level name (module.name)"
    if names[0] in PROGRAM_MODULES:
        return (
            f"it was defined in {names[0]} (a script run directly, a notebook "
            "or an interactive interpreter), which is no module of the project"
        )
    if path.startswith(SHELL_MODULE + "."):
        return "it was defined in manage.py shell, which is no module of the project"
    return None


def _name(name: str) -> bool:
    return name.isidentifier() and not keyword.iskeyword(name)


def task_at(path: str) -> Task:
    """The Task a job's dotted path names, or why there is none.

    ``TaskNotImportable`` when the path does not import (here, yet: the
    reason is chained), ``TaskNeverImportable`` when no worker ever could
    (``never_importable``), ``TaskNotFound`` when it names something that is
    not a ``django.tasks.Task`` (``os.system`` written into a row): such a
    thing is never called. A module written since this process last looked at
    its folder (a deploy) is found: the import system is told to look again.
    """
    if reason := never_importable(path):
        raise TaskNeverImportable(
            f"{path!r} can never be imported by a worker: {reason}; it was not "
            "called. Define tasks in a module of the project (such as "
            "myapp/tasks.py)."
        )
    try:
        found = _import(path)
    except Exception as exc:
        raise TaskNotImportable(f"{path!r} cannot be imported") from exc
    if not isinstance(found, Task):
        raise TaskNotFound(
            f"{path!r} is {type(found).__qualname__}, not a {TASKS_MODULE}.Task; "
            "it was not called."
        )
    return found


def _import(path: str) -> Any:
    try:
        return import_string(path)
    except ImportError:
        importlib.invalidate_caches()
        return import_string(path)


def job_result(
    task: Task,
    job_id: int,
    status: TaskResultStatus,
    *,
    backend: str,
    args: list,
    kwargs: dict,
    enqueued_at: datetime | None,
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    last_attempted_at: datetime | None = None,
    errors: Sequence[Any] = (),
    worker_ids: Sequence[str] = (),
) -> JobResult:
    """The TaskResult of a job, whoever builds it (an enqueue, a row, a
    running child): the fields a job does not have yet default to empty."""
    return JobResult(
        task=task,
        id=str(job_id),
        status=status,
        enqueued_at=enqueued_at,
        started_at=started_at,
        finished_at=finished_at,
        last_attempted_at=last_attempted_at,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=list(errors),
        worker_ids=list(worker_ids),
    )
