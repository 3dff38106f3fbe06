"""Cron ticks: time zones, catch-up, and bad expressions."""

import re
from datetime import UTC, datetime, timedelta

import pytest

from django_jobs.compat import TASKS_MODULE
from django_jobs.models import Schedule
from django_jobs.schedules import (
    InvalidSchedule,
    check_cron,
    check_task,
    check_time_zone,
    due_ticks,
    next_tick,
    ticks_between,
)


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_ticks_between_excludes_the_start_and_includes_the_end():
    ticks = ticks_between(
        "*/5 * * * *", "UTC", at(2026, 1, 1, 10, 0), at(2026, 1, 1, 10, 15)
    )
    assert ticks == [
        at(2026, 1, 1, 10, 5),
        at(2026, 1, 1, 10, 10),
        at(2026, 1, 1, 10, 15),
    ]


def test_ticks_follow_the_schedules_time_zone():
    # 03:00 in Paris is 02:00 UTC in winter and 01:00 UTC in summer.
    winter = next_tick("0 3 * * *", "Europe/Paris", at(2026, 1, 10, 12, 0))
    summer = next_tick("0 3 * * *", "Europe/Paris", at(2026, 7, 10, 12, 0))
    assert winter == at(2026, 1, 11, 2, 0)
    assert summer == at(2026, 7, 11, 1, 0)


def schedule(last_tick) -> Schedule:
    return Schedule(
        name="s",
        task_path="tests.tasks.tick",
        cron="0 * * * *",
        time_zone="UTC",
        last_tick=last_tick,
        created_at=at(2026, 1, 1),
    )


def test_only_the_latest_missed_tick_by_default():
    ticks = due_ticks(schedule(at(2026, 1, 1, 0, 0)), at(2026, 1, 1, 5, 30), catch_up=0)
    assert ticks == [at(2026, 1, 1, 5, 0)]


def test_missed_ticks_within_the_catch_up_window():
    ticks = due_ticks(
        schedule(at(2026, 1, 1, 0, 0)), at(2026, 1, 1, 5, 30), catch_up=3 * 3600
    )
    assert ticks == [at(2026, 1, 1, 3, 0), at(2026, 1, 1, 4, 0), at(2026, 1, 1, 5, 0)]


def test_nothing_due_before_the_next_tick():
    assert due_ticks(schedule(at(2026, 1, 1, 5, 0)), at(2026, 1, 1, 5, 59), 0) == []


def test_a_new_schedule_starts_after_its_creation():
    new = schedule(None)
    assert due_ticks(new, at(2026, 1, 1, 0, 30), 0) == []
    assert due_ticks(new, at(2026, 1, 1, 1, 0), 0) == [at(2026, 1, 1, 1, 0)]


@pytest.mark.parametrize(
    "expression", ["", "* * *", "61 * * * *", "every minute", None]
)
def test_invalid_cron(expression):
    with pytest.raises(InvalidSchedule, match="is not a valid cron expression"):
        check_cron(expression)


def test_invalid_time_zone_and_task():
    with pytest.raises(
        InvalidSchedule, match="'Mars/Olympus' is not a known time zone"
    ):
        check_time_zone("Mars/Olympus")
    with pytest.raises(InvalidSchedule, match="cannot be imported"):
        check_task("tests.tasks.nope")
    not_a_task = rf"is not a {re.escape(TASKS_MODULE)}\.Task"
    with pytest.raises(InvalidSchedule, match=not_a_task):
        check_task("os.system")
    assert check_task("tests.tasks.tick").name == "tick"


@pytest.mark.parametrize("path", ["__main__.tick", "not a path"])
def test_a_task_no_worker_can_import_says_so(path):
    with pytest.raises(InvalidSchedule, match="can never be imported by a worker"):
        check_task(path)


def test_many_missed_ticks_are_bounded():
    ticks = ticks_between(
        "* * * * *", "UTC", at(2026, 1, 1), at(2026, 1, 1) + timedelta(days=30)
    )
    assert len(ticks) == 1000


def test_invalid_schedule_is_in_exceptions_and_still_importable_from_schedules():
    from django_jobs import exceptions, schedules

    assert schedules.InvalidSchedule is exceptions.InvalidSchedule
    assert issubclass(exceptions.InvalidSchedule, ValueError)
