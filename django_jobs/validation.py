"""Checks that a task can be run by a JobsBackend, with messages that name it.

Called when the task is declared, on every ``using()`` and again on enqueue,
so that a mistake surfaces at the line that made it and is checked against
the settings in force.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from inspect import iscoroutinefunction
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils import timezone
from django.utils.inspect import get_func_args
from django.utils.module_loading import import_string

from .compat import (
    TASK_MAX_PRIORITY,
    TASK_MIN_PRIORITY,
    InvalidTask,
    Task,
    is_module_level_function,
)
from .conf import ON_FAILURE_CHOICES
from .limit_keys import check_limit_key
from .sizes import cpu_seconds_problem, size_problem
from .task import never_importable

if TYPE_CHECKING:
    from .backend import JobsBackend

UNIQUE_KEY_MAX_LENGTH = 200
#: Django's range of priorities: higher runs first.
PRIORITY_MIN, PRIORITY_MAX = TASK_MIN_PRIORITY, TASK_MAX_PRIORITY
#: The widths of a job's columns: longer values cannot be stored.
QUEUE_NAME_MAX_LENGTH = 100
TASK_PATH_MAX_LENGTH = 255
#: The largest ttr (seconds) and max_attempts: a 32-bit column's range.
MAX_COUNT = 2**31 - 1

Invalid = Callable[[str], InvalidTask]

#: The functions of tasks whose dotted path was seen to import back to them:
#: each is checked once (enqueue is hot; ``using()`` copies share the function).
_imports_back: set[Callable[..., Any]] = set()


def validate_task(backend: JobsBackend, task: Task) -> None:
    path = f"{task.func.__module__}.{task.func.__qualname__}"

    def invalid(message: str) -> InvalidTask:
        return InvalidTask(f"Task {path!r}: {message}")

    _check_function(backend, task, invalid)
    _check_priority(task.priority, invalid)
    _check_datetime_or_delay("run_after", task.run_after, invalid)
    _check_queue(backend, task.queue_name, invalid)
    if len(task.module_path) > TASK_PATH_MAX_LENGTH:
        raise invalid(
            f"its dotted path is longer than {TASK_PATH_MAX_LENGTH} characters."
        )
    for name in ("ttr", "max_attempts"):
        value = getattr(task, name, None)
        if value is not None and not _positive_int(value):
            raise invalid(
                f"{name} must be a positive whole number of at most {MAX_COUNT}, "
                f"got {value!r}."
            )
    on_failure = getattr(task, "on_failure", None)
    if on_failure is not None and on_failure not in ON_FAILURE_CHOICES:
        raise invalid(
            f"on_failure must be one of {', '.join(ON_FAILURE_CHOICES)}, "
            f"got {on_failure!r}."
        )
    _check_unique(task, invalid)
    check_limit_key(task, invalid)
    _check_resources(task, invalid)
    _check_lane(backend, task, invalid)
    expires = getattr(task, "expires", None)
    if isinstance(expires, timedelta | datetime) or expires is None:
        _check_datetime_or_delay("expires", expires, invalid, positive=True)
    elif (
        isinstance(expires, bool)
        or not isinstance(expires, int | float)
        or not math.isfinite(expires)
        or expires <= 0
    ):
        raise invalid(
            "expires must be a positive number of seconds, a timedelta or an "
            f"aware datetime, got {expires!r}."
        )
    _check_reachable(task.run_after, expires, invalid)


def check_importable(task: Task) -> None:
    """Refuse, at enqueue, a task that no worker could import by its path.

    Not at ``@task``: its module is still being imported then. The path must
    import back to a Task of that path: this task, or the same function after
    a reload (whose path a worker imports all the same).
    """
    if task.func in _imports_back:
        return
    path = task.module_path
    problem = never_importable(path)
    if problem is None:
        try:
            found = import_string(path)
        except Exception as exc:
            cause = f"{type(exc).__name__}: {exc}".splitlines()[0]
            problem = f"its dotted path does not import here ({cause})"
        else:
            if not isinstance(found, Task) or found.module_path != path:
                problem = f"its dotted path names {_a_thing(found)}, not this task"
    if problem is not None:
        raise InvalidTask(
            f"Task {path!r}: a worker cannot run it: {problem}. Define the task "
            "in a module of your project (such as myapp/tasks.py) and import it "
            "from there; tasks defined in the shell or __main__ cannot be run "
            "by a worker."
        )
    _imports_back.add(task.func)


def _a_thing(found: Any) -> str:
    if isinstance(found, Task):
        return f"the task {found.module_path!r}"
    return f"a {type(found).__qualname__}"


def _check_function(backend: JobsBackend, task: Task, invalid: Invalid) -> None:
    if not is_module_level_function(task.func):
        raise invalid(
            "a task function must be defined at module level, so that a "
            "worker can import it by its dotted path."
        )
    if iscoroutinefunction(task.func) and not backend.supports_async_task:
        raise invalid("this backend does not run async tasks.")
    if task.takes_context and get_func_args(task.func)[:1] != ["context"]:
        raise invalid("takes_context=True needs 'context' as the first argument.")


def _check_queue(backend: JobsBackend, name: Any, invalid: Invalid) -> None:
    if not isinstance(name, str) or not name or len(name) > QUEUE_NAME_MAX_LENGTH:
        raise invalid(
            f"queue_name must be a non-empty string of at most "
            f"{QUEUE_NAME_MAX_LENGTH} characters, got {name!r}."
        )
    if backend.queues and name not in backend.queues:
        raise invalid(
            f"queue {name!r} is not one of this backend's QUEUES "
            f"({', '.join(sorted(backend.queues))})."
        )


def _check_reachable(run_after: Any, expires: Any, invalid: Invalid) -> None:
    """run_after and expires must give times a datetime can hold (year 9999)."""
    now = timezone.now()
    try:
        run_at = now + run_after if isinstance(run_after, timedelta) else now
        run_at = run_after if isinstance(run_after, datetime) else run_at
    except OverflowError:
        raise invalid(f"run_after is too far in the future: {run_after!r}.") from None
    try:
        if isinstance(expires, int | float):
            expires = timedelta(seconds=expires)
        if isinstance(expires, timedelta):
            _ = run_at + expires  # the overflow is what is checked
    except OverflowError:
        raise invalid(f"expires is too far in the future: {expires!r}.") from None


def priority_problem(priority: Any) -> str | None:
    """What is wrong with ``priority`` (Django's range, whole numbers), if
    anything: for tasks, the console's "change priority" and the table's
    constraint alike."""
    if (
        isinstance(priority, bool)
        or not isinstance(priority, int)
        or not PRIORITY_MIN <= priority <= PRIORITY_MAX
    ):
        return (
            f"priority must be a whole number from {PRIORITY_MIN} "
            f"to {PRIORITY_MAX}, got {priority!r}."
        )
    return None


def _check_priority(priority: Any, invalid: Invalid) -> None:
    if problem := priority_problem(priority):
        raise invalid(problem)


def _check_unique(task: Task, invalid: Invalid) -> None:
    unique = getattr(task, "unique", None)
    if unique is not None and not isinstance(unique, bool):
        raise invalid(f"unique must be True or False, got {unique!r}.")
    key = getattr(task, "unique_key", None)
    if key is not None and (
        not isinstance(key, str) or not key or len(key) > UNIQUE_KEY_MAX_LENGTH
    ):
        raise invalid(
            f"unique_key must be a non-empty string of at most "
            f"{UNIQUE_KEY_MAX_LENGTH} characters, got {key!r}."
        )


def _check_datetime_or_delay(
    name: str, value: Any, invalid: Invalid, *, positive: bool = False
) -> None:
    """A datetime (aware under USE_TZ) or a timedelta; None is fine."""
    if value is None:
        return
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise invalid(f"{name} must not be a negative delay, got {value!r}.")
        if positive and not value:
            raise invalid(f"{name} must be a positive delay, got {value!r}.")
    elif isinstance(value, datetime):
        if settings.USE_TZ and timezone.is_naive(value):
            raise invalid(
                f"{name} must be an aware datetime when USE_TZ is True "
                f"(got the naive {value.isoformat()})."
            )
    else:
        raise invalid(
            f"{name} must be a datetime or a timedelta (a delay from now), "
            f"got {value!r}."
        )


def _check_resources(task: Task, invalid: Invalid) -> None:
    """``max_memory`` is a size, ``max_cpu_seconds`` a positive number."""
    memory = getattr(task, "max_memory", None)
    if memory is not None and (problem := size_problem(memory)):
        raise invalid(f"max_memory: {problem}.")
    cpu = getattr(task, "max_cpu_seconds", None)
    if cpu is not None and (problem := cpu_seconds_problem(cpu)):
        raise invalid(f"max_cpu_seconds: {problem}.")


def _check_lane(backend: JobsBackend, task: Task, invalid: Invalid) -> None:
    """A queue of the async lane runs only ``async def`` tasks, many to a
    process: a sync one would block every job beside it and could not be
    cancelled at its ttr, and a memory or CPU limit cannot be one job's."""
    if task.queue_name not in backend.config.ASYNC_QUEUES:
        return
    where = f"queue {task.queue_name!r} is in OPTIONS['ASYNC_QUEUES']"
    if not iscoroutinefunction(task.func):
        raise invalid(
            f"{where}: it runs only async def tasks, many at once in one event "
            "loop. Make the task async def, or give it a queue outside "
            "ASYNC_QUEUES (docs/async.rst)."
        )
    for name in ("max_memory", "max_cpu_seconds"):
        if getattr(task, name, None) is not None:
            raise invalid(
                f"{where}: its jobs share a process, so {name} cannot be "
                "enforced for one of them. Drop it, or give the task a queue "
                "outside ASYNC_QUEUES (docs/async.rst)."
            )


def _positive_int(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int)
        and 1 <= value <= MAX_COUNT
    )
