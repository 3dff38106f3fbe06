"""Recurring jobs: cron schedules, their ticks, and the jobs enqueued for them.

There is no leader. Every worker looks at the schedules every second or so
and enqueues the ticks that are due; the unique constraint on a job's
(schedule, scheduled_for) keeps exactly one job per tick however many workers
try at once, and a schedule's ``last_tick`` only ever moves forward.

Ticks missed while no worker ran are not all replayed: the latest missed
tick always runs, and earlier ones only if they are younger than
``SCHEDULE_CATCH_UP`` seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from django.db import DatabaseError, DataError, IntegrityError, transaction
from django.utils import timezone

from . import queue
from .compat import TASKS_MODULE, Task
from .exceptions import (
    InvalidSchedule,  # defined here before; users import it from here too
    TaskNeverImportable,
    TaskNotFound,
    TaskNotImportable,
)
from .models import Schedule
from .task import task_at

if TYPE_CHECKING:
    from .backend import JobsBackend
    from .task import Call

logger = logging.getLogger("django_jobs.schedules")

#: More ticks than this in one look means a schedule far behind: the rest
#: are dropped as too old anyway.
MAX_TICKS_AT_ONCE = 1000
#: Fields a cron expression may have: crontab's five, or six with croniter's
#: seconds last. Not seven: croniter reads the seventh as a year, and a
#: seven-field expression written for Quartz or Spring (seconds first) would
#: fire at other times than its author meant.
CRON_FIELDS = (5, 6)


class Problems:
    """The last error of each schedule, so that each is logged once.

    Workers look at the schedules every second or so, and a schedule that
    cannot enqueue stays due until it can: without this, its error would be
    logged every second by every worker.
    """

    def __init__(self) -> None:
        self.last: dict[tuple[str, str], str] = {}

    def report(self, backend: JobsBackend, name: str, exc: Exception) -> None:
        """Log ``exc`` for schedule ``name``, unless it is what was logged last."""
        self.raise_if_database_down(exc)
        lines = str(exc).strip().splitlines()
        message = f"{type(exc).__name__}: {lines[0] if lines else ''}".rstrip(": ")
        key = (backend.alias, name)
        if self.last.get(key) == message:
            return
        self.last[key] = message
        logger.error(
            "schedule %r cannot enqueue its jobs: %s (logged again only if the "
            "error changes; the other schedules go on)",
            name,
            message,
        )
        logger.debug("schedule %r: %s", name, message, exc_info=exc)

    def resolved(self, backend: JobsBackend, name: str) -> None:
        if self.last.pop((backend.alias, name), None) is not None:
            logger.info("schedule %r enqueues its jobs again", name)

    def clear(self) -> None:
        self.last.clear()

    @staticmethod
    def raise_if_database_down(exc: Exception) -> None:
        """Re-raise errors of the database itself: they are no schedule's fault.

        Bad data in one row (DataError, IntegrityError) is that row's problem;
        any other database error (connection lost, table missing) stops the
        round, for the worker to report once.
        """
        if isinstance(exc, DatabaseError) and not isinstance(
            exc, DataError | IntegrityError
        ):
            raise exc


problems = Problems()


def check_cron(expression: str) -> None:
    """Refuse a cron expression that a worker could not run: invalid, with a
    number of fields other than CRON_FIELDS, or without a next tick (from
    now, looking as far as croniter does: 50 years)."""
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise InvalidSchedule(
            f"{expression!r} is not a valid cron expression (five fields: minute, "
            "hour, day of month, month, day of week; e.g. '*/5 * * * *')."
        )
    count = len(expression.split())
    if count not in CRON_FIELDS and not expression.strip().startswith("@"):
        raise InvalidSchedule(
            f"{expression!r} has {count} fields; a schedule's cron expression has "
            "five (minute, hour, day of month, month, day of week), or six with "
            "seconds last ('*/5 * * * * 30': every five minutes, at 30 seconds)."
        )
    next_tick(expression, "UTC", timezone.now())


def check_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidSchedule(f"{name!r} is not a known time zone.") from None


def check_task(path: str) -> Task:
    try:
        return task_at(path)
    except TaskNotImportable as exc:
        raise InvalidSchedule(f"{exc} ({exc.__cause__}).") from None
    except TaskNeverImportable as exc:
        raise InvalidSchedule(str(exc)) from None
    except TaskNotFound:
        raise InvalidSchedule(f"{path!r} is not a {TASKS_MODULE}.Task.") from None


def ticks_between(
    cron: str, zone: str, after: datetime, until: datetime
) -> list[datetime]:
    """The ticks in (after, until], in the schedule's time zone, as aware UTC."""
    iterator = croniter(cron, after.astimezone(check_time_zone(zone)))
    ticks = []
    while len(ticks) < MAX_TICKS_AT_ONCE:
        try:
            tick = iterator.get_next(datetime)
        except CroniterBadDateError:  # no more ticks (next_tick says why)
            break
        if tick > until:
            break
        ticks.append(tick.astimezone(UTC))
    return ticks


def next_tick(cron: str, zone: str, after: datetime) -> datetime:
    """The first tick after ``after``; InvalidSchedule if there is none."""
    iterator = croniter(cron, after.astimezone(check_time_zone(zone)))
    try:
        return iterator.get_next(datetime).astimezone(UTC)
    except CroniterBadDateError:  # '0 0 31 2 *': no day matches
        raise InvalidSchedule(
            f"{cron!r} never fires: no date from now on matches it."
        ) from None


def due_ticks(schedule: Schedule, now: datetime, catch_up: float) -> list[datetime]:
    """The ticks to enqueue now: the latest missed one, and younger ones."""
    since = schedule.last_tick or schedule.created_at
    ticks = ticks_between(schedule.cron, schedule.time_zone, since, now)
    if not ticks:
        return []
    window_start = now - timedelta(seconds=catch_up)
    return [tick for tick in ticks[:-1] if tick >= window_start] + [ticks[-1]]


# Settings


def sync(backend: JobsBackend) -> None:
    """Write the schedules declared in ``OPTIONS["SCHEDULES"]`` to the table.

    The settings win for everything but ``enabled``, which people may turn
    off in the admin. Schedules that left the settings are removed. A row
    that cannot be read or written is reported and skipped: the others are
    still synced, and the worker still starts.
    """
    declared = backend.config.SCHEDULES
    rows = Schedule.objects.using(backend.db).filter(backend=backend.alias)
    try:
        rows.filter(from_settings=True).exclude(name__in=list(declared)).delete()
    except Exception as exc:
        problems.report(backend, "(removed from the settings)", exc)
    for name, spec in declared.items():
        try:
            with transaction.atomic(using=backend.db):
                sync_one(backend, rows, name, spec)
        except Exception as exc:
            problems.report(backend, name, exc)


def sync_one(backend: JobsBackend, rows, name: str, spec: Mapping[str, Any]) -> None:
    fields = schedule_fields(spec)
    row, created = rows.get_or_create(
        name=name, defaults={**fields, "from_settings": True}
    )
    if not created and any(getattr(row, k) != v for k, v in fields.items()):
        changed = row.cron != fields["cron"] or row.time_zone != fields["time_zone"]
        for key, value in fields.items():
            setattr(row, key, value)
        row.from_settings = True
        if changed:
            row.next_tick = None
        row.save(using=backend.db)


def schedule_fields(spec: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "task_path": spec["task"],
        "cron": spec["cron"],
        "time_zone": spec.get("timezone", "UTC"),
        "args": list(spec.get("args", [])),
        "kwargs": dict(spec.get("kwargs", {})),
        "queue": spec.get("queue", ""),
        "priority": spec.get("priority"),
    }


# Enqueuing ticks


def enqueue_due(backend: JobsBackend, now: datetime | None = None) -> int:
    """Enqueue every due tick of every enabled schedule; return how many jobs.

    Each schedule on its own: one that fails (a task that moved, arguments
    that no longer fit, a row written by hand that cannot be read) is
    reported once per distinct error and tried again next time; the others
    run. Only a database that is unreachable stops the round.
    """
    now = now or timezone.now()
    catch_up = backend.config.SCHEDULE_CATCH_UP
    enqueued = 0
    for schedule in due_schedules(backend, now):
        try:
            with transaction.atomic(using=backend.db):
                enqueued += enqueue_schedule(backend, schedule, now, catch_up)
        except Exception as exc:
            problems.report(backend, schedule.name, exc)
        else:
            problems.resolved(backend, schedule.name)
    return enqueued


def due_schedules(backend: JobsBackend, now: datetime) -> list[Schedule]:
    """The enabled schedules whose next tick has come, each row read on its own
    if reading them together fails (a row that cannot be loaded is reported)."""
    due = (
        Schedule.objects.using(backend.db)
        .filter(backend=backend.alias, enabled=True)
        .exclude(next_tick__gt=now)
    )
    try:
        return list(due)
    except Exception as exc:
        problems.raise_if_database_down(exc)
    loaded = []
    for pk, name in due.values_list("pk", "name"):
        try:
            loaded.append(Schedule.objects.using(backend.db).get(pk=pk))
        except Exception as exc:
            problems.report(backend, name, exc)
    return loaded


def enqueue_schedule(
    backend: JobsBackend, schedule: Schedule, now: datetime, catch_up: float
) -> int:
    """Enqueue a schedule's due ticks and move its ``last_tick`` to now.

    A schedule that never fires (again) raises InvalidSchedule, which the
    round reports once and skips, as it does any schedule's error.
    """
    upcoming = next_tick(schedule.cron, schedule.time_zone, now)
    enqueued = enqueue_ticks(backend, schedule, due_ticks(schedule, now, catch_up))
    moved = Schedule.objects.using(backend.db).filter(pk=schedule.pk)
    if schedule.last_tick is not None:
        moved = moved.filter(last_tick__lte=now)
    moved.update(last_tick=now, next_tick=upcoming)
    return enqueued


def scheduled_call(
    backend: JobsBackend,
    task_path: str,
    *,
    queue: str = "",
    priority: int | None = None,
    args: Any = None,
    kwargs: Any = None,
) -> tuple[Task, Call]:
    """The task a schedule enqueues, with its overrides, and its checked call.

    The admin's schedule form runs this too, so that it refuses exactly what
    a worker could not enqueue. InvalidSchedule, InvalidTask or TypeError.
    """
    task = check_task(task_path)
    changes: dict[str, Any] = {}
    if queue:
        changes["queue_name"] = queue
    if priority is not None:
        changes["priority"] = priority
    if changes:
        task = task.using(**changes)
    backend.validate_task(task)
    return task, backend.prepare_call(task, args or [], kwargs or {})


def enqueue_ticks(
    backend: JobsBackend, schedule: Schedule, ticks: list[datetime]
) -> int:
    """One job per tick; a tick another worker enqueued first is skipped."""
    if not ticks:
        return 0
    task, call = scheduled_call(
        backend,
        schedule.task_path,
        queue=schedule.queue,
        priority=schedule.priority,
        args=schedule.args,
        kwargs=schedule.kwargs,
    )
    fields = backend.job_columns(task)
    enqueued = 0
    for tick in ticks:
        inserted = queue.insert(
            [call],
            **fields,
            schedule=(schedule.pk, tick),
            limit_keys=backend.limit_keys(task, [call]),
            using=backend.db,
        )
        if inserted.created[0]:
            enqueued += 1
            logger.info(
                "schedule %r: enqueued job %s for %s",
                schedule.name,
                inserted.ids[0],
                tick.isoformat(),
            )
    return enqueued
