"""The backend's ``OPTIONS``, parsed once into typed values.

Every option has a default, a type and a range here and nowhere else. Bad
values raise ``ImproperlyConfigured`` with a message that names the option;
the system checks turn the same messages into ``django_jobs.E003``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from .rates import BadRate, parse_rate
from .sizes import cpu_seconds_problem, size_or_none

ON_FAILURE_CHOICES = ("bury", "delete")


@dataclass(frozen=True, slots=True)
class JobsOptions:
    """A backend's ``OPTIONS``, checked and with every default filled in."""

    #: Database alias for the jobs tables; ``None`` asks the routers.
    DATABASE: str | None = None
    #: Alias of a direct connection to the same database, for the workers'
    #: supervisors (LISTEN, prepared claims), when ``DATABASE`` goes through
    #: a transaction pooler such as PgBouncer. ``None``: ``DATABASE``.
    WORKER_DATABASE: str | None = None
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
    #: Seconds between a worker's heartbeats (one statement each on
    #: PostgreSQL). The fleet's lease lasts three heartbeats.
    HEARTBEAT_INTERVAL: float = 5.0
    #: Seconds between the polls of a worker that notifications wake
    #: (PostgreSQL): a safeguard only. Workers that cannot listen poll every
    #: --poll-interval, which is also how often the lease holder looks for
    #: delayed jobs that came due.
    LISTEN_POLL_INTERVAL: float = 30.0
    #: A worker silent for this long is presumed dead and its jobs are rescued.
    WORKER_TIMEOUT: float = 60.0
    #: Seconds between two runs of the rescuer (in the worker that holds the
    #: fleet's lease).
    RESCUE_INTERVAL: float = 15.0
    #: Seconds between SIGTERM and SIGKILL when a job's child must be stopped.
    KILL_GRACE: float = 5.0
    #: Recurring jobs: {name: {"task", "cron", "args", "kwargs", "queue",
    #: "priority", "timezone"}} (see docs/schedules.rst).
    SCHEDULES: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Missed ticks younger than this many seconds are all enqueued; of older
    #: ones, only the latest (0: only the latest missed tick).
    SCHEDULE_CATCH_UP: float = 0.0
    #: Seconds between two looks at the schedules (in the lease holder).
    SCHEDULE_INTERVAL: float = 1.0
    #: Per-queue limits: {queue: {"max_concurrency": n, "rate_limit": per_second,
    #: "key_concurrency": n, "key_rate_limit": "1000/hour"}} (docs/limits.rst).
    QUEUE_LIMITS: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: Seconds to keep done jobs (None: forever).
    DONE_RETENTION: float | None = 7 * 24 * 3600.0
    #: Seconds to keep buried jobs (None: forever).
    BURIED_RETENTION: float | None = 30 * 24 * 3600.0
    #: Seconds between two runs of the pruner (in the lease holder).
    PRUNE_INTERVAL: float = 300.0
    #: PostgreSQL: done jobs move out of the hot table into the history's
    #: day tables this many seconds after they finish.
    HISTORY_DELAY: float = 10.0
    #: Send children's stdout and stderr through the worker's logging.
    CAPTURE_OUTPUT: bool = True
    #: Bytes of each attempt's output kept on the job (0: none).
    OUTPUT_TAIL: int = 16384
    #: Seconds a job whose task cannot be imported is retried (uncounted)
    #: before it is buried: a deploy reaching web servers before workers.
    #: Tried 1 s after the first failure, then doubling, at most a minute
    #: apart (worker/import_grace.py); a path no deploy can bring gets no grace.
    IMPORT_GRACE: float = 900.0
    #: Resident memory (bytes, or a size such as "512MB") a job's process
    #: tree may use before the worker kills it, for jobs whose task sets no
    #: ``max_memory`` (None: no limit; ``runworker --max-memory`` first).
    MAX_MEMORY: int | None = None
    #: CPU seconds a job's process tree may use, likewise (``max_cpu_seconds``).
    MAX_CPU_SECONDS: float | None = None
    #: Also set RLIMIT_AS (address space) to the memory limit in a job's
    #: process before it runs: a hard bound per process, on virtual memory.
    MEMORY_RLIMIT: bool = False
    #: An autoscaling worker (``--concurrency MIN:MAX``) stops the children
    #: left idle for this many seconds (worker/scaling.py): back to MIN
    #: within this long of its queues emptying.
    SCALE_DOWN_AFTER: float = 30.0
    #: Database connections the live workers may hold together, each
    #: counting its supervisor's, its listener's and two per child slot
    #: (None: no budget). A worker grows only within it, and one whose
    #: minimum does not fit is refused at start.
    CONNECTION_BUDGET: int | None = None
    #: Bytes the host must keep available (/proc/meminfo MemAvailable) for
    #: an autoscaling worker to grow (0: grow whatever the memory).
    SCALE_MIN_FREE_MEMORY: int = 256 * 1024 * 1024
    #: Queues whose ``async def`` jobs run in the async lane, each with how
    #: many of them one lane child runs at once (docs/async.rst).
    ASYNC_QUEUES: Mapping[str, int] = field(default_factory=dict)
    #: Seconds a step of a lane job may hold the event loop before it is
    #: logged as blocking its siblings (asyncio's debug mode uses 0.1).
    ASYNC_SLOW_STEP: float = 0.1
    #: Seconds a lane job may hold the loop before its child is retired
    #: (it takes no more jobs and is replaced).
    ASYNC_BLOCK_LIMIT: float = 5.0
    #: Dotted paths of hooks (django_jobs.hooks.Hook), called in this order
    #: around every job's enqueue, run and outcome (docs/observability.rst).
    HOOKS: tuple[str, ...] = ()
    #: Seconds one call of a hook may take where the worker can stop it
    #: (docs/observability.rst, "Hooks that misbehave").
    HOOK_TIMEOUT: float = 5.0
    #: OpenTelemetry tracing when opentelemetry-api is installed: the job's
    #: run span is a "child" of its enqueue span or starts a trace with a
    #: "link" to it; "off": no tracing (a team's own hook may do it).
    TRACING: str = "child"

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


def _where(name: str) -> str:
    """How a message names an option (or a value nested inside one)."""
    return name if name.startswith("OPTIONS[") else f"OPTIONS[{name!r}]"


def positive_int(name: str, value: Any) -> int:
    """Accept whole numbers above zero; bools are not numbers here."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ImproperlyConfigured(
            f"{_where(name)} must be a positive integer, got {value!r}."
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
            f"{_where(name)} must be a number of seconds (zero or more), got {value!r}."
        )
    return float(value)


def positive_number(name: str, value: Any) -> float:
    seconds = non_negative_number(name, value)
    if seconds == 0:
        raise ImproperlyConfigured(
            f"{_where(name)} must be more than zero, got {value!r}."
        )
    return seconds


def database_alias(name: str, value: Any) -> str | None:
    if value is not None and (not isinstance(value, str) or not value):
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be a database alias (a string), got {value!r}."
        )
    return value


def one_of(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    """The validator of a setting that takes one of ``choices``."""

    def validate(name: str, value: Any) -> str:
        if value not in choices:
            raise ImproperlyConfigured(
                f"OPTIONS[{name!r}] must be one of {', '.join(choices)}, got {value!r}."
            )
        return value

    return validate


on_failure = one_of(ON_FAILURE_CHOICES)


SCHEDULE_KEYS = {"task", "cron", "args", "kwargs", "queue", "priority", "timezone"}


def schedules(name: str, value: Any) -> dict[str, dict[str, Any]]:
    """The shape of each schedule; cron, task and zone are checked by checks."""
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"OPTIONS[{name!r}] must be a dict of schedules.")
    for schedule, spec in value.items():
        where = f"OPTIONS[{name!r}][{schedule!r}]"
        if not isinstance(schedule, str) or not schedule or len(schedule) > 100:
            raise ImproperlyConfigured(
                f"{where}: a schedule's name is a non-empty string of at most "
                "100 characters."
            )
        if not isinstance(spec, Mapping):
            raise ImproperlyConfigured(f"{where} must be a dict.")
        unknown = sorted(set(spec) - SCHEDULE_KEYS)
        if unknown:
            raise ImproperlyConfigured(
                f"{where} has unknown key(s) {', '.join(map(repr, unknown))}; "
                f"the keys are {', '.join(sorted(SCHEDULE_KEYS))}."
            )
        for required in ("task", "cron"):
            if not isinstance(spec.get(required), str) or not spec[required]:
                raise ImproperlyConfigured(f"{where}[{required!r}] must be a string.")
        if not isinstance(spec.get("args", []), list | tuple):
            raise ImproperlyConfigured(f"{where}['args'] must be a list.")
        if not isinstance(spec.get("kwargs", {}), Mapping):
            raise ImproperlyConfigured(f"{where}['kwargs'] must be a dict.")
        priority = spec.get("priority", 0)
        if isinstance(priority, bool) or not isinstance(priority, int):
            raise ImproperlyConfigured(f"{where}['priority'] must be an integer.")
    return {key: dict(spec) for key, spec in value.items()}


#: What a queue's limits may name (docs/limits.rst).
QUEUE_LIMIT_NAMES = (
    "max_concurrency", "rate_limit", "key_concurrency", "key_rate_limit"
)  # fmt: skip


def queue_limits(name: str, value: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(f"OPTIONS[{name!r}] must be a dict of queues.")
    for queue, limits in value.items():
        where = f"OPTIONS[{name!r}][{queue!r}]"
        if not isinstance(limits, Mapping) or not set(limits) <= set(QUEUE_LIMIT_NAMES):
            raise ImproperlyConfigured(
                f"{where} must be a dict of limits: "
                f"{', '.join(map(repr, QUEUE_LIMIT_NAMES))}."
            )
        for limit in ("max_concurrency", "key_concurrency"):
            if limits.get(limit) is not None:
                positive_int(f"{where}[{limit!r}]", limits[limit])
        rate = limits.get("rate_limit")
        if rate is not None:
            positive_number(f"{where}['rate_limit']", rate)
        if limits.get("key_rate_limit") is not None:
            try:
                parse_rate(limits["key_rate_limit"])
            except BadRate as exc:
                message = f"{where}['key_rate_limit']: {exc}"
                raise ImproperlyConfigured(message) from None
    return {key: dict(limits) for key, limits in value.items()}


#: The most jobs one lane child may run at once.
MAX_ASYNC_CONCURRENCY = 10_000


def async_queues(name: str, value: Any) -> dict[str, int]:
    if not isinstance(value, Mapping):
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be a dict of queue names to the number of "
            f"jobs a lane child runs at once, such as {{'crawl': 100}}."
        )
    for queue, concurrency in value.items():
        if not isinstance(queue, str) or not queue:
            raise ImproperlyConfigured(
                f"OPTIONS[{name!r}] names queues by non-empty strings, got {queue!r}."
            )
        where = f"OPTIONS[{name!r}][{queue!r}]"
        positive_int(where, concurrency)
        if concurrency > MAX_ASYNC_CONCURRENCY:
            raise ImproperlyConfigured(
                f"{where} must be at most {MAX_ASYNC_CONCURRENCY}, got {concurrency!r}."
            )
    return dict(value)


TRACING_CHOICES = ("child", "link", "off")
tracing = one_of(TRACING_CHOICES)


def dotted_paths(name: str, value: Any) -> tuple[str, ...]:
    """A list of dotted paths (whether each imports is checks' to say)."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ImproperlyConfigured(
            f"OPTIONS[{name!r}] must be a list of dotted paths, got {value!r}."
        )
    for path in value:
        if not isinstance(path, str) or "." not in path.strip("."):
            raise ImproperlyConfigured(
                f"OPTIONS[{name!r}] holds {path!r}, which is not a dotted path "
                "such as 'myproject.hooks.Audit'."
            )
    return tuple(value)


def boolean(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ImproperlyConfigured(
            f"{_where(name)} must be True or False, got {value!r}."
        )
    return value


def non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(
            f"{_where(name)} must be a whole number, zero or more, got {value!r}."
        )
    return value


def optional_size(name: str, value: Any) -> int | None:
    return size_or_none(value, _where(name), ImproperlyConfigured)


def optional_cpu_seconds(name: str, value: Any) -> float | None:
    if value is not None and (problem := cpu_seconds_problem(value)):
        raise ImproperlyConfigured(f"{_where(name)}: {problem}.")
    return None if value is None else float(value)


def optional_positive_int(name: str, value: Any) -> int | None:
    return None if value is None else positive_int(name, value)


def optional_seconds(name: str, value: Any) -> float | None:
    return None if value is None else non_negative_number(name, value)


_VALIDATORS: dict[str, Callable[[str, Any], Any]] = {
    "DATABASE": database_alias,
    "WORKER_DATABASE": database_alias,
    "DEFAULT_TTR": positive_int,
    "DEFAULT_MAX_ATTEMPTS": positive_int,
    "DEFAULT_ON_FAILURE": on_failure,
    "RETRY_BACKOFF": non_negative_number,
    "RETRY_BACKOFF_MAX": non_negative_number,
    "HEARTBEAT_INTERVAL": positive_number,
    "LISTEN_POLL_INTERVAL": positive_number,
    "WORKER_TIMEOUT": positive_number,
    "RESCUE_INTERVAL": positive_number,
    "KILL_GRACE": non_negative_number,
    "SCHEDULES": schedules,
    "SCHEDULE_CATCH_UP": non_negative_number,
    "SCHEDULE_INTERVAL": positive_number,
    "QUEUE_LIMITS": queue_limits,
    "DONE_RETENTION": optional_seconds,
    "BURIED_RETENTION": optional_seconds,
    "PRUNE_INTERVAL": positive_number,
    "HISTORY_DELAY": non_negative_number,
    "CAPTURE_OUTPUT": boolean,
    "OUTPUT_TAIL": non_negative_int,
    "IMPORT_GRACE": non_negative_number,
    "MAX_MEMORY": optional_size,
    "MAX_CPU_SECONDS": optional_cpu_seconds,
    "MEMORY_RLIMIT": boolean,
    "SCALE_DOWN_AFTER": positive_number,
    "CONNECTION_BUDGET": optional_positive_int,
    "SCALE_MIN_FREE_MEMORY": non_negative_int,
    "ASYNC_QUEUES": async_queues,
    "ASYNC_SLOW_STEP": positive_number,
    "ASYNC_BLOCK_LIMIT": positive_number,
    "HOOKS": dotted_paths,
    "HOOK_TIMEOUT": positive_number,
    "TRACING": tracing,
}
