"""A schedule that cannot run is logged once per error and stops no other.

Workers look at the schedules every second: one bad schedule must neither
fill the logs nor keep the good ones from enqueuing, whether it is bad in
what it says (a queue the backend refuses, arguments that do not fit) or in
how it was stored (a row written by hand that cannot even be loaded).
"""

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from django_jobs import schedules
from django_jobs.backend import JobsBackend
from django_jobs.models import Job, Schedule

# Valid JSON to the databases, too deep for Python's json module to load.
DEEP = "[" * 2000 + "]" * 2000
START = datetime(2026, 1, 1, tzinfo=UTC)
NOW = datetime(2026, 1, 1, 3, 5, tzinfo=UTC)


@pytest.fixture(autouse=True)
def forget_problems():
    """Each test starts with no error remembered (they are kept per name)."""
    yield
    schedules.problems.clear()


@pytest.fixture
def backend():
    return JobsBackend("default", {"QUEUES": ["default"], "OPTIONS": {}})


def schedule(name: str, **fields) -> Schedule:
    fields = {"task_path": "tests.tasks.tick", "cron": "0 * * * *", **fields}
    fields.setdefault("args", [name])
    return Schedule.objects.create(name=name, created_at=START, **fields)


def errors(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "django_jobs.schedules" and r.levelno == logging.ERROR
    ]


def enqueue_every_second(backend, times: int = 3) -> list[int]:
    return [schedules.enqueue_due(backend, now=NOW) for _ in range(times)]


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"queue": "reports"}, "queue 'reports' is not one of this backend's QUEUES"),
        ({"args": [1, 2]}, "cannot be called with these arguments"),
        (
            {"args": [], "kwargs": {"name": "x", "colour": "red"}},
            "unexpected keyword argument",
        ),
        ({"task_path": "tests.tasks.gone"}, "'tests.tasks.gone' cannot be imported"),
        ({"time_zone": "Nowhere/City"}, "'Nowhere/City' is not a known time zone"),
    ],
)
def test_a_bad_schedule_is_logged_once_and_the_others_run(
    db, backend, caplog, fields, words
):
    schedule("bad", **fields)
    schedule("good")
    assert enqueue_every_second(backend) == [1, 0, 0]
    assert Job.objects.get().schedule.name == "good"
    (logged,) = errors(caplog)
    assert logged.startswith("schedule 'bad' cannot enqueue its jobs: ")
    assert words in logged


def test_a_new_error_is_logged_and_a_fixed_schedule_says_so(db, backend, caplog):
    caplog.set_level(logging.INFO, logger="django_jobs.schedules")
    bad = schedule("bad", queue="reports")
    enqueue_every_second(backend)
    Schedule.objects.filter(pk=bad.pk).update(queue="", args=[1, 2, 3])
    enqueue_every_second(backend)
    assert len(errors(caplog)) == 2
    assert "cannot be called with these arguments" in errors(caplog)[1]
    Schedule.objects.filter(pk=bad.pk).update(args=["bad"], queue="")
    assert schedules.enqueue_due(backend, now=NOW) == 1
    assert "schedule 'bad' enqueues its jobs again" in caplog.messages
    Schedule.objects.filter(pk=bad.pk).update(queue="reports")
    schedules.enqueue_due(backend, now=NOW + timedelta(hours=1))
    assert len(errors(caplog)) == 3  # broken again: said again


# (column, value) a person could write by hand, and the databases that
# store it: jsonb and timestamptz refuse what SQLite's text columns keep.
BAD_ROWS = [
    ("args", "not json [", {"sqlite", "mysql"}),
    ("args", DEEP, {"sqlite", "postgresql", "mysql"}),
    ("kwargs", DEEP, {"sqlite", "postgresql", "mysql"}),
    ("last_tick", "2026-02-30 10:00:00", {"sqlite"}),
    ("created_at", "2026-13-45 99:00:00", {"sqlite"}),
    ("last_tick", "20000-01-01 00:00:00+00", {"postgresql"}),
]


def write_by_hand(pk: int, column: str, value: str) -> None:
    cast = ""
    if connection.vendor == "postgresql":
        cast = "::jsonb" if column in ("args", "kwargs") else "::timestamptz"
    table = Schedule._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # as a person at the sqlite3 prompt could
            cursor.execute("PRAGMA ignore_check_constraints = ON")
        if connection.vendor == "mysql":  # MariaDB's JSON is text with a CHECK
            cursor.execute("SET SESSION check_constraint_checks = 0")
        cursor.execute(
            f"UPDATE {table} SET {column} = %s{cast} WHERE id = %s", [value, pk]
        )
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA ignore_check_constraints = OFF")
        if connection.vendor == "mysql":
            cursor.execute("SET SESSION check_constraint_checks = 1")


@pytest.mark.parametrize(("column", "value", "vendors"), BAD_ROWS)
def test_rows_that_cannot_be_loaded_are_skipped_alone(
    db, backend, caplog, column, value, vendors
):
    if connection.vendor not in vendors:
        pytest.skip(f"{connection.vendor} cannot store {value!r} in {column}")
    schedule("first")
    broken = schedule("broken")
    schedule("last")
    write_by_hand(broken.pk, column, value)
    assert enqueue_every_second(backend) == [2, 0, 0]
    assert sorted(Job.objects.values_list("schedule__name", flat=True)) == [
        "first",
        "last",
    ]
    (logged,) = errors(caplog)
    assert logged.startswith("schedule 'broken' cannot enqueue its jobs"), logged


def test_sync_skips_a_row_it_cannot_load_and_syncs_the_others(db, caplog):
    declared = {
        "nightly": {"task": "tests.tasks.tick", "cron": "0 3 * * *", "args": ["n"]},
        "hourly": {"task": "tests.tasks.tick", "cron": "0 * * * *", "args": ["h"]},
    }
    backend = JobsBackend("default", {"OPTIONS": {"SCHEDULES": declared}})
    nightly = schedule("nightly", from_settings=True)
    write_by_hand(nightly.pk, "args", DEEP)
    schedules.sync(backend)
    schedules.sync(backend)
    assert Schedule.objects.filter(name="hourly").exists()
    (logged,) = errors(caplog)
    assert logged.startswith("schedule 'nightly' cannot enqueue its jobs")


def test_a_database_error_still_stops_the_round(db, backend, monkeypatch):
    from django.db import OperationalError

    schedule("good")

    def down(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(schedules, "enqueue_ticks", down)
    with pytest.raises(OperationalError):
        schedules.enqueue_due(backend, now=NOW)
