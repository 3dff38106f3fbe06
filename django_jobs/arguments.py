"""Checks on a task's call arguments, made when the job is enqueued.

A job's arguments are stored as JSON and bound to the task function in a
worker, perhaps hours later. Both can fail; both are checked here, in the
caller's process, so the mistake surfaces at the line that made it.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Whether a call binds depends only on how many positional arguments it has
# and which keywords it names, never on their values: cache by that shape.
_fits: dict[tuple[Callable[..., Any], int, frozenset[str]], bool] = {}

_SCALARS = frozenset({str, int, bool, type(None)})


def bind(
    func: Callable[..., Any],
    path: str,
    args: Sequence[Any],
    kwargs: Mapping[str, Any],
    *,
    takes_context: bool = False,
) -> None:
    """Raise TypeError, naming the task, if the call does not fit ``func``."""
    shape = (func, len(args), frozenset(kwargs))
    if _fits.get(shape):
        return
    signature = inspect.signature(func)
    leading = (None,) if takes_context else ()
    try:
        signature.bind(*leading, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(
            f"Task {path!r} cannot be called with these arguments: {exc} "
            f"(signature: {func.__name__}{signature})."
        ) from None
    _fits[shape] = True


def to_json(value: Any, path: str, where: str) -> Any:
    """``value`` as plain JSON data (tuples become lists), or TypeError.

    Stricter than a plain ``json.dumps``: keys must be strings and floats
    finite, because anything else would come back different (or not at all)
    from the database.
    """
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [
            item if type(item) in _SCALARS else to_json(item, path, f"{where}[{i}]")
            for i, item in enumerate(value)
        ]
    if kind is dict:
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _not_json(path, where, f"key {key!r} is not a string")
            result[key] = (
                item
                if type(item) in _SCALARS
                else to_json(item, path, f"{where}[{key!r}]")
            )
        return result
    return _to_json_other(value, path, where)


def _to_json_other(value: Any, path: str, where: str) -> Any:
    """The less common types: floats, bytes, and other mappings and sequences."""
    if isinstance(value, str | bool | int):
        return value  # subclasses, such as enums with str or int values
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _not_json(path, where, f"{value!r} is not a finite number")
        return value
    if isinstance(value, bytes):
        try:
            return value.decode()
        except UnicodeDecodeError:
            raise _not_json(path, where, "bytes that are not UTF-8") from None
    if isinstance(value, Mapping):
        return to_json(dict(value), path, where)
    if isinstance(value, Sequence):
        return to_json(list(value), path, where)
    raise _not_json(path, where, f"Unsupported type: {type(value).__qualname__}")


def _not_json(path: str, where: str, reason: str) -> TypeError:
    return TypeError(
        f"Task {path!r}: {where} cannot be stored as JSON ({reason}). "
        "Pass ids and plain values, and load objects inside the task."
    )
