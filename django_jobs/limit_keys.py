"""A task's ``limit_key``: which argument names the key its limits hold for.

``@task(limit_key="customer_id")`` names one of the task function's
parameters; each job's key is that argument's value in its call (a default
counts), stored on the job row (``Job.limit_key``). The queue's limits per
key (docs/limits.rst) then hold for each value. Checked when the task is
declared (the name) and at enqueue (the value), so that the mistake surfaces
at the line that made it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .compat import InvalidTask, Task

#: The width of the job's column.
LIMIT_KEY_MAX_LENGTH = 255


@functools.cache
def _signature(func: Callable[..., Any]) -> inspect.Signature:
    return inspect.signature(func)


def check_limit_key(task: Task, invalid: Callable[[str], InvalidTask]) -> None:
    """Refuse a ``limit_key`` that is not the name of one of the task's
    parameters (the first, ``context``, of a task that takes it, is none)."""
    name = getattr(task, "limit_key", None)
    if name is None:
        return
    parameters = list(_signature(task.func).parameters.values())
    if task.takes_context:
        parameters = parameters[1:]
    names = [
        parameter.name
        for parameter in parameters
        if parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
    if not isinstance(name, str) or name not in names:
        raise invalid(
            f"limit_key {name!r} is not a parameter of {task.module_path} "
            f"(its parameters: {', '.join(names) or 'none'})."
        )


def limit_key_of(task: Task, args: Sequence[Any], kwargs: Mapping[str, Any]) -> str:
    """The key of one call of ``task`` ("" if the task names no limit_key).

    TypeError unless the argument is a string or an integer (a key is
    compared as text: 42 and "42" are one key), ValueError for an empty
    string or one longer than the column.
    """
    name = getattr(task, "limit_key", None)
    if name is None:
        return ""
    leading = (None,) if task.takes_context else ()
    bound = _signature(task.func).bind(*leading, *args, **kwargs)
    bound.apply_defaults()
    value = bound.arguments[name]
    where = f"Task {task.module_path!r}: its limit_key argument {name!r}"
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise TypeError(
            f"{where} is {value!r} ({type(value).__qualname__}); a key must be "
            "a string or an integer."
        )
    key = str(value)
    if not key or len(key) > LIMIT_KEY_MAX_LENGTH or "\x00" in key:
        raise ValueError(
            f"{where} is {value!r}; a key must be 1 to {LIMIT_KEY_MAX_LENGTH} "
            "characters long, with no NUL character."
        )
    return key
