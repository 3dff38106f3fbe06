"""Rows that cannot be run: found by the claim and buried, one at a time.

A row may have been written by hand, or by another version of the code:
arguments stored as a JSON object, a ``run_at`` of ``-infinity``, data nested
too deep for Python's JSON codec. Such a row must not stop the claim of the
jobs beside it, nor reach a child (where it would fail obscurely, or break
the worker's protocol). The claim looks at every row it reserves, and buries
the ones that make no sense with an error that names the field; the rest run.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone

from ..arguments import MAX_DEPTH, nesting_depth, storable_text
from ..exceptions import InvalidJobRow, class_path
from ..expressions import JSONAppend
from ..fields import Unreadable
from ..models import Job
from .guard import change, unreserved

logger = logging.getLogger("django_jobs.queue")

#: Columns a claimed job needs to be run, and what each must hold.
_INTEGERS = ("priority", "ttr", "attempts", "max_attempts")
#: JSON columns a child receives, and the type each must have (None: any).
_JSON = (("args", list), ("kwargs", dict), ("checkpoint", None))


def problem(job: Job) -> str | None:
    """Why ``job``'s row cannot be run, naming the field; None if it can."""
    if not isinstance(job.task_path, str) or not job.task_path:
        return f"task_path is {job.task_path!r}, not a dotted path"
    if not isinstance(job.run_at, datetime):
        return "run_at cannot be read as a date and time (infinity, or not a time)"
    for name in _INTEGERS:
        value = getattr(job, name)
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{name} is {value!r}, not a whole number"
    if job.ttr < 1:
        return f"ttr is {job.ttr}, not a positive number of seconds"
    for name, kinds in _JSON:
        if reason := _json_problem(name, getattr(job, name), kinds):
            return reason
    return None


def _json_problem(name: str, value: Any, kind: type | None) -> str | None:
    if isinstance(value, Unreadable):
        return f"{name} cannot be read: {value.reason}"
    if kind is not None and not isinstance(value, kind):
        wanted = "a list" if kind is list else "an object"
        return f"{name} is a JSON {_json_type(value)}, not {wanted}"
    if nesting_depth(value) > MAX_DEPTH:
        return f"{name} nests deeper than {MAX_DEPTH} lists and objects"
    return None


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object" if isinstance(value, dict) else "array"


def bury_unrunnable(
    job: Job,
    reason: str,
    *,
    worker_id: str,
    using: str,
    unless_moved: Q | None = None,
) -> None:
    """Bury a claimed job whose row cannot be run; it is not retried."""
    error = {
        "exception_class_path": class_path(InvalidJobRow),
        "traceback": storable_text(
            f"{InvalidJobRow.__name__}: {reason}; the job was not run.\n"
        ),
        "attempt": job.attempts if isinstance(job.attempts, int) else None,
        "worker_id": worker_id,
        "at": timezone.now().isoformat(),
    }
    # Errors that cannot be read cannot be appended to: start a new list.
    errors = JSONAppend("errors", error) if isinstance(job.errors, list) else [error]
    values = {"finished_at": timezone.now(), "errors": errors, **unreserved()}
    change(
        "bury",
        job.pk,
        token=job.claim_token,
        using=using,
        values=values,
        unless_moved=unless_moved,
    )
    logger.warning("job %s buried: its row cannot be run: %s", job.pk, reason)
