"""The error recorded for a failed attempt, in the shape django.tasks needs."""

from __future__ import annotations

import traceback as tb
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..arguments import storable_text
from ..exceptions import class_path
from ..models import Job

# Errors


def error_entry(
    job: Job, exception: type[BaseException] | BaseException, message: str = ""
) -> dict[str, Any]:
    """The error of ``job``'s current attempt, from an exception or its class."""
    cls = exception if isinstance(exception, type) else type(exception)
    if isinstance(exception, BaseException):
        traceback = "".join(tb.format_exception(exception))
    else:
        traceback = f"{cls.__name__}: {message}\n" if message else f"{cls.__name__}\n"
    return attempt_error(job, class_path(cls), traceback)


def unstarted_error(
    exception: type[BaseException], reason: str, at: datetime | None = None
) -> dict[str, Any]:
    """The error of a job stopped before any attempt (cancelled, expired)."""
    return {
        "exception_class_path": class_path(exception),
        "traceback": f"{exception.__name__}: {reason}\n",
        "attempt": None,
        "worker_id": "",
        "at": (at or timezone.now()).isoformat(),
    }


def attempt_error(
    job: Job, exception_class_path: str, traceback: str
) -> dict[str, Any]:
    """A job error in the shape django.tasks' TaskError needs, plus context."""
    return {
        "exception_class_path": storable_text(exception_class_path),
        "traceback": storable_text(traceback),
        "attempt": job.attempts,
        "worker_id": job.reserved_by,
        "at": timezone.now().isoformat(),
    }
