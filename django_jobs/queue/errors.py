"""The error recorded for a failed attempt, in the shape django.tasks needs."""

from __future__ import annotations

import traceback as tb
from typing import Any

from django.utils import timezone

from ..exceptions import (
    class_path,
)
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


def attempt_error(
    job: Job, exception_class_path: str, traceback: str
) -> dict[str, Any]:
    """A job error in the shape django.tasks' TaskError needs, plus context."""
    return {
        "exception_class_path": exception_class_path,
        "traceback": traceback,
        "attempt": job.attempts,
        "worker_id": job.reserved_by,
        "at": timezone.now().isoformat(),
    }
