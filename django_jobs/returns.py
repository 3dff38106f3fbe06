"""A job's return value as it is stored, or why it cannot be stored.

The one rule for the worker's children and the test helpers alike
(``django_jobs.testing``): both call ``stored_return_value`` on what a task
returned and bury the job at once on ``ReturnValueNotStored``. The task ran
to its end, so its work is done; another attempt would do it again.
"""

from __future__ import annotations

import decimal
import uuid
from datetime import date, datetime, time, timedelta
from pathlib import PurePath
from typing import Any

from django.db.models import Model

from .arguments import NotJSON, to_json, unsupported
from .exceptions import ReturnValueNotStored

WHERE = "the return value"

#: What to return instead of a value of these types, most specific first.
_ADVICE: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (decimal.Decimal, "Return str(value) instead (Decimal(text) reads it back)."),
    ((datetime, date, time), "Return value.isoformat() instead."),
    (timedelta, "Return value.total_seconds() instead."),
    (uuid.UUID, "Return str(value) instead."),
    (Model, "Return its pk instead, and load the object where it is needed."),
    ((set, frozenset), "Return a list instead, such as sorted(value)."),
    (PurePath, "Return str(value) instead."),
    (bytes, "Return text instead, such as base64.b64encode(value).decode()."),
)
_PLAIN = (
    "Return plain JSON data instead: str, int, float, bool and None, in lists "
    "and dicts with string keys."
)
_BURIED = (
    "The job is buried, not retried: its work was done, and another attempt "
    "would do it again."
)


def stored_return_value(value: Any, task_path: str) -> Any:
    """``value`` as the job stores it (plain JSON, text made storable), or
    ``ReturnValueNotStored`` saying why not and what to return instead."""
    try:
        return to_json(value, task_path, WHERE, escape=True)
    except NotJSON as exc:
        raise ReturnValueNotStored(not_stored_message(exc)) from None
    except Exception as exc:  # a mapping or sequence that fails to convert
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise ReturnValueNotStored(
            f"Task {task_path!r}: {WHERE} cannot be stored as JSON (converting it "
            f"raised {problem}). {_PLAIN} {_BURIED}"
        ) from None


def not_stored_message(exc: NotJSON) -> str:
    """The words of a ReturnValueNotStored: the value, its type, the advice."""
    if exc.culprit is not None and exc.reason == unsupported(exc.culprit):
        what = f"is {_a(exc.culprit.__qualname__)}, which cannot be stored as JSON"
    else:
        what = f"cannot be stored as JSON ({exc.reason})"
    return f"Task {exc.path!r}: {exc.where} {what}. {advice(exc.culprit)} {_BURIED}"


def advice(culprit: type | None) -> str:
    """What to return instead of a value of type ``culprit``."""
    if culprit is not None:
        for types, words in _ADVICE:
            if issubclass(culprit, types):
                return words
    return _PLAIN


def _a(name: str) -> str:
    """ "a Decimal", "an object", "a UUID" (a capital U reads "you")."""
    return f"an {name}" if name[:1] in "AEIOaeiou" else f"a {name}"
