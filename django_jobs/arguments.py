"""Checks on a task's call arguments, made when the job is enqueued.

A job's arguments are stored as JSON and bound to the task function in a
worker, perhaps hours later. Both can fail; both are checked here, in the
caller's process, so the mistake surfaces at the line that made it.
"""

from __future__ import annotations

import inspect
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

# Whether a call binds depends only on how many positional arguments it has
# and which keywords it names, never on their values: cache by that shape.
_fits: dict[tuple[Callable[..., Any], int, frozenset[str]], bool] = {}

#: How deeply lists and dicts may nest in a job's arguments, checkpoint and
#: return value. Deeper data is refused at enqueue (and a row holding it is
#: buried by the claim): Python's JSON codec and the worker's protocol
#: recurse, and a few thousand levels would break them.
MAX_DEPTH = 100

#: MariaDB's limit instead: its ``JSON_VALID``, the CHECK on each JSON column
#: there, refuses a document nested 32 deep, and the outermost list of
#: ``args`` (or dict of ``kwargs``) counts as one level. MySQL 8's limit is
#: 100, as ours.
MARIADB_MAX_DEPTH = 31

#: Integers must be printable by ``json.dumps`` (Python refuses more than
#: 4,300 digits by default).
_INT_DIGITS = 4000
_INT_LIMIT = 10**_INT_DIGITS

#: What no database column of a job can hold: NUL, and lone surrogates.
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


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


def to_json(value: Any, path: str, where: str, *, escape: bool = False) -> Any:
    """``value`` as plain JSON data (tuples become lists), or TypeError.

    Stricter than a plain ``json.dumps``: keys must be strings, floats
    finite, integers printable, nesting at most ``MAX_DEPTH`` deep, and text
    free of NUL characters and lone surrogates, because anything else would
    come back different from the database, or not be stored at all
    (PostgreSQL refuses them; SQLite keeps them), and the two must agree.
    With ``escape`` such text is escaped instead of refused (see
    ``storable_text``): for what a job hands back, which must be kept.
    """
    return _convert(value, path, where, escape, 1)


def _convert(value: Any, path: str, where: str, escape: bool, depth: int) -> Any:
    kind = type(value)
    if kind is str:
        return _text(value, path, where, escape)
    if kind is int:
        return _integer(value, path, where)
    if value is None or kind is bool:
        return value
    if kind is list or kind is tuple:
        _check_depth(depth, path, where)
        return [
            item
            if _plain(item)
            else _convert(item, path, f"{where}[{i}]", escape, depth + 1)
            for i, item in enumerate(value)
        ]
    if kind is dict:
        _check_depth(depth, path, where)
        result = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise _not_json(path, where, f"key {key!r} is not a string")
            key = _text(key, path, f"{where} key {key!r}", escape)
            result[key] = (
                item
                if _plain(item)
                else _convert(item, path, f"{where}[{key!r}]", escape, depth + 1)
            )
        return result
    return _convert_other(value, path, where, escape, depth)


def _plain(item: Any) -> bool:
    """Whether ``item`` is a scalar that is already fine as it is (fast path)."""
    kind = type(item)
    if kind is str:
        return not _BAD_TEXT.search(item)
    if kind is int:
        return -_INT_LIMIT < item < _INT_LIMIT
    return item is None or kind is bool


def _convert_other(value: Any, path: str, where: str, escape: bool, depth: int) -> Any:
    """The less common types: floats, bytes, and other mappings and sequences."""
    if isinstance(value, str):  # subclasses, such as enums with str values
        return _text(value, path, where, escape)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return _integer(value, path, where)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _not_json(path, where, f"{value!r} is not a finite number")
        return float(value)
    if isinstance(value, bytes):
        try:
            return _text(value.decode(), path, where, escape)
        except UnicodeDecodeError:
            raise _not_json(path, where, "bytes that are not UTF-8", bytes) from None
    if isinstance(value, Mapping):
        return _convert(dict(value), path, where, escape, depth)
    if isinstance(value, Sequence):
        return _convert(list(value), path, where, escape, depth)
    raise _not_json(path, where, unsupported(type(value)), type(value))


def unsupported(kind: type) -> str:
    """The reason given for a value whose type JSON has no place for."""
    return f"Unsupported type: {kind.__qualname__}"


def _text(value: str, path: str, where: str, escape: bool) -> str:
    if not _BAD_TEXT.search(value):
        return value
    if escape:
        return storable_text(value)
    found = _BAD_TEXT.search(value).group()
    what = "a NUL character" if found == "\x00" else f"a lone surrogate ({found!r})"
    raise _not_json(path, where, f"text with {what}, which databases cannot store")


def _integer(value: int, path: str, where: str) -> int:
    if -_INT_LIMIT < value < _INT_LIMIT:
        return value
    raise _not_json(path, where, f"an integer of more than {_INT_DIGITS} digits")


def _check_depth(depth: int, path: str, where: str) -> None:
    if depth > MARIADB_MAX_DEPTH and depth > (limit := max_depth()):
        top = where.partition("[")[0]  # the whole path would be MAX_DEPTH long
        raise _not_json(path, top, f"it nests deeper than {limit} lists and dicts")


def max_depth(using: str | None = None) -> int:
    """How deeply JSON may nest in the jobs' database (``using``, or as the
    routers say): ``MAX_DEPTH``, or MariaDB's lower limit there, so that deep
    data is refused with the same clear error rather than by a CHECK."""
    from django.db import connections, router

    from .models import Job

    connection = connections[using or router.db_for_write(Job)]
    if connection.vendor == "mysql" and connection.mysql_is_mariadb:
        return MARIADB_MAX_DEPTH
    return MAX_DEPTH


def storable_text(text: str) -> str:
    """``text`` with NUL characters and lone surrogates written as escapes.

    Neither can be stored by PostgreSQL (in text or JSON), and a lone
    surrogate cannot even be encoded as UTF-8. What a job hands back (an
    error, its output, a return value, a progress message) is kept on both
    databases alike: a NUL becomes the four characters ``\\x00`` and a lone
    surrogate such as U+D800 the six characters ``\\ud800``, as Python
    writes them.
    """
    if not _BAD_TEXT.search(text):
        return text
    return _BAD_TEXT.sub(_escape_one, text)


def _escape_one(match: re.Match) -> str:
    return "\\x00" if match.group() == "\x00" else f"\\u{ord(match.group()):04x}"


def storable(value: Any) -> Any:
    """JSON data with every string (keys too) made storable by ``storable_text``."""
    kind = type(value)
    if kind is str:
        return storable_text(value)
    if kind is list:
        return [storable(item) for item in value]
    if kind is dict:
        return {storable_text(k): storable(item) for k, item in value.items()}
    return value


def nesting_depth(value: Any) -> int:
    """How many lists and dicts deep ``value`` goes (without recursion, so that
    any value a database hands back can be measured)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in item)
    return deepest


class NotJSON(TypeError):
    """A value that is not JSON data as a job stores it: what and where."""

    def __init__(
        self, path: str, where: str, reason: str, culprit: type | None = None
    ) -> None:
        super().__init__(
            f"Task {path!r}: {where} cannot be stored as JSON ({reason}). "
            "Pass ids and plain values, and load objects inside the task."
        )
        self.path = path
        self.where = where
        self.reason = reason
        #: The type of the value refused, when its type is the problem.
        self.culprit = culprit


def _not_json(
    path: str, where: str, reason: str, culprit: type | None = None
) -> NotJSON:
    return NotJSON(path, where, reason, culprit)
