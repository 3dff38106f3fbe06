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

from croniter import CroniterBadCronError, croniter
from django.tasks import Task
from django.utils import timezone
from django.utils.module_loading import import_string

from . import queue
from .models import Schedule

if TYPE_CHECKING:
    from .backend import JobsBackend
    from .task import Call

logger = logging.getLogger("django_jobs.schedules")

#: More ticks than this in one look means a schedule far behind: the rest
#: are dropped as too old anyway.
MAX_TICKS_AT_ONCE = 1000


class InvalidSchedule(ValueError):
    """A schedule whose cron expression, time zone or task cannot be used."""


def check_cron(expression: str) -> None:
    if not isinstance(expression, str) or not croniter.is_valid(expression):
        raise InvalidSchedule(
            f"{expression!r} is not a valid cron expression (five fields: minute, "
            "hour, day of month, month, day of week; e.g. '*/5 * * * *')."
        )


def check_time_zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidSchedule(f"{name!r} is not a known time zone.") from None


def check_task(path: str) -> Task:
    try:
        task = import_string(path)
    except ImportError as exc:
        raise InvalidSchedule(f"{path!r} cannot be imported ({exc}).") from None
    if not isinstance(task, Task):
        raise InvalidSchedule(f"{path!r} is not a django.tasks.Task.")
    return task


def ticks_between(
    cron: str, zone: str, after: datetime, until: datetime
) -> list[datetime]:
    """The ticks in (after, until], in the schedule's time zone, as aware UTC."""
    iterator = croniter(cron, after.astimezone(check_time_zone(zone)))
    ticks = []
    while len(ticks) < MAX_TICKS_AT_ONCE:
        tick = iterator.get_next(datetime)
        if tick > until:
            break
        ticks.append(tick.astimezone(UTC))
    return ticks


def next_tick(cron: str, zone: str, after: datetime) -> datetime:
    iterator = croniter(cron, after.astimezone(check_time_zone(zone)))
    return iterator.get_next(datetime).astimezone(UTC)


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
    off in the admin. Schedules that left the settings are removed.
    """
    declared = backend.config.SCHEDULES
    db = backend.db
    rows = Schedule.objects.using(db).filter(backend=backend.alias)
    rows.filter(from_settings=True).exclude(name__in=list(declared)).delete()
    for name, spec in declared.items():
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
            row.save(using=db)


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
    """Enqueue every due tick of every enabled schedule; return how many jobs."""
    now = now or timezone.now()
    db = backend.db
    catch_up = backend.config.SCHEDULE_CATCH_UP
    due = Schedule.objects.using(db).filter(backend=backend.alias, enabled=True)
    enqueued = 0
    for schedule in due.exclude(next_tick__gt=now):
        try:
            enqueued += enqueue_ticks(
                backend, schedule, due_ticks(schedule, now, catch_up)
            )
            upcoming = next_tick(schedule.cron, schedule.time_zone, now)
        except (InvalidSchedule, CroniterBadCronError, TypeError) as exc:
            logger.error("schedule %r cannot run: %s", schedule.name, exc)
            continue
        last = schedule.last_tick
        moved = Schedule.objects.using(db).filter(pk=schedule.pk)
        if last is not None:
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
    fields = backend.job_fields(task)
    enqueued = 0
    for tick in ticks:
        inserted = queue.insert(
            [call], **fields, schedule=(schedule.pk, tick), using=backend.db
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
