"""The backend's ``OPTIONS``, parsed once into typed values.

Every option has a default, a type and a range here and nowhere else. Bad
values raise ``ImproperlyConfigured`` with a message that names the option;
the system checks turn the same messages into ``django_jobs.E003``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured

ON_FAILURE_CHOICES = ("bury", "delete")


@dataclass(frozen=True, slots=True)
class JobsOptions:
    #: Database alias for the jobs tables; ``None`` asks the routers.
    DATABASE: str | None = None
    #: Seconds a job may run before it is killed, unless it touches.
    DEFAULT_TTR: int = 300
    #: Attempts before a failing job is buried (or deleted).
    DEFAULT_MAX_ATTEMPTS: int = 3
    #: What happens to a job whose last attempt failed: "bury" or "delete".
    DEFAULT_ON_FAILURE: str = "bury"
    #: First retry delay in seconds; it doubles with every attempt.
    RETRY_BACKOFF: float = 10.0
    #: Longest retry delay in seconds.
    RETRY_BACKOFF_MAX: float = 3600.0
    #: Seconds between a worker's heartbeats.
    HEARTBEAT_INTERVAL: float = 5.0
    #: A worker silent for this long is presumed dead and its jobs are rescued.
    WORKER_TIMEOUT: float = 60.0
    #: Seconds between two runs of the rescuer in each worker.
    RESCUE_INTERVAL: float = 15.0
    #: Seconds between SIGTERM and SIGKILL when a job's child must be stopped.
    KILL_GRACE: float = 5.0

    @classmethod
    def from_dict(cls, options: Mapping[str, Any]) -> JobsOptions:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown option(s) {', '.join(map(repr, unknown))}; "
                f"the options are {', '.join(sorted(known))}."
            )
        values = {}
        for name, value in options.items():
            values[name] = _VALIDATORS[name](name, value)
        parsed = cls(**values)
        if parsed.RETRY_BACKOFF > parsed.RETRY_BACKOFF_MAX:
            raise ImproperlyConfigured(
                "OPTIONS['RETRY_BACKOFF'] must not exceed OPTIONS['RETRY_BACKOFF_MAX']."
            )
        if parsed.WORKER_TIMEOUT <= parsed.HEARTBEAT_INTERVAL:
            raise ImproperlyConfigured(
                "OPTIONS['WORKER_TIMEOUT'] must be longer than "
                "OPTIONS['HEARTBEAT_INTERVAL'], or live workers would be rescued."
            )
        return parsed


def positive_int(name: str, value: Any) -> int:
    """Accept whole numbers above zero; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be a positive integer, got {value!r}."
        )
    return value


def non_negative_number(name: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or value != value  # NaN
        or value < 0
        or value == float("inf")
    ):
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be a number of seconds (zero or more), "
            f"got {value!r}."
        )
    return float(value)


def positive_number(name: str, value: Any) -> float:
    seconds = non_negative_number(name, value)
    if seconds == 0:
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be more than zero seconds, got {value!r}."
        )
    return seconds


def database_alias(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be a database alias (a string), got {value!r}."
        )
    return value


def on_failure(name: str, value: Any) -> str:
    if value not in ON_FAILURE_CHOICES:
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be one of {', '.join(ON_FAILURE_CHOICES)}, "
            f"got {value!r}."
        )
    return value


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "DATABASE": database_alias,
    "DEFAULT_TTR": positive_int,
    "DEFAULT_MAX_ATTEMPTS": positive_int,
    "DEFAULT_ON_FAILURE": on_failure,
    "RETRY_BACKOFF": non_negative_number,
    "RETRY_BACKOFF_MAX": non_negative_number,
    "HEARTBEAT_INTERVAL": positive_number,
    "WORKER_TIMEOUT": positive_number,
    "RESCUE_INTERVAL": positive_number,
    "KILL_GRACE": non_negative_number,
}
