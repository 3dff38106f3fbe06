"""Schedules: synced from settings, one job per tick, however many workers."""

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.core import checks
from django.db import connections
from django.test import override_settings

from django_jobs import schedules
from django_jobs.backend import JobsBackend
from django_jobs.compat import task_backends
from django_jobs.models import Job, Schedule

SCHEDULES = {
    "hourly": {"task": "tests.tasks.tick", "cron": "0 * * * *", "args": ["hourly"]},
    "paris": {
        "task": "tests.tasks.tick",
        "cron": "30 2 * * *",
        "kwargs": {"name": "paris"},
        "timezone": "Europe/Paris",
        "queue": "emails",
        "priority": 7,
    },
}


def backend_with(options) -> JobsBackend:
    return JobsBackend(
        "default", {"QUEUES": [], "OPTIONS": {"RETRY_BACKOFF": 0, **options}}
    )


def at(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_sync_writes_settings_and_keeps_the_admins_switch(db):
    backend = backend_with({"SCHEDULES": SCHEDULES})
    schedules.sync(backend)
    assert set(Schedule.objects.values_list("name", flat=True)) == {"hourly", "paris"}
    paris = Schedule.objects.get(name="paris")
    assert (paris.queue, paris.priority, paris.time_zone) == (
        "emails",
        7,
        "Europe/Paris",
    )
    Schedule.objects.filter(name="hourly").update(enabled=False)
    changed = {"hourly": {**SCHEDULES["hourly"], "cron": "15 * * * *"}}
    schedules.sync(backend_with({"SCHEDULES": changed}))
    hourly = Schedule.objects.get(name="hourly")
    assert (hourly.cron, hourly.enabled) == ("15 * * * *", False)
    assert not Schedule.objects.filter(name="paris").exists()  # left the settings


def test_schedules_added_in_the_admin_survive_a_sync(db):
    Schedule.objects.create(name="mine", task_path="tests.tasks.tick", cron="* * * * *")
    schedules.sync(backend_with({"SCHEDULES": SCHEDULES}))
    assert Schedule.objects.filter(name="mine").exists()


def test_enqueue_due_ticks_once(db):
    backend = backend_with({"SCHEDULES": SCHEDULES})
    schedules.sync(backend)
    Schedule.objects.update(created_at=at(2026, 1, 1))
    assert schedules.enqueue_due(backend, now=at(2026, 1, 1, 3, 5)) == 2
    assert schedules.enqueue_due(backend, now=at(2026, 1, 1, 3, 6)) == 0
    hourly = Job.objects.get(schedule__name="hourly")
    assert hourly.scheduled_for == at(2026, 1, 1, 3, 0)  # the latest missed tick
    assert hourly.args == ["hourly"]
    paris = Job.objects.get(schedule__name="paris")
    assert paris.scheduled_for == at(2026, 1, 1, 1, 30)  # 02:30 in Paris
    assert (paris.queue, paris.priority, paris.kwargs) == (
        "emails",
        7,
        {"name": "paris"},
    )
    assert Schedule.objects.get(name="hourly").next_tick == at(2026, 1, 1, 4, 0)


def test_disabled_schedules_do_not_fire(db):
    backend = backend_with({"SCHEDULES": SCHEDULES})
    schedules.sync(backend)
    Schedule.objects.update(created_at=at(2026, 1, 1), enabled=False)
    assert schedules.enqueue_due(backend, now=at(2026, 1, 2)) == 0


@pytest.mark.django_db(transaction=True)
def test_racing_workers_never_double_fire_a_tick():
    """Four 'workers' look at the schedules over six hours of simulated time."""
    backend = backend_with(
        {
            "SCHEDULES": {
                "often": {
                    "task": "tests.tasks.tick",
                    "cron": "*/10 * * * *",
                    "args": ["x"],
                }
            },
            "SCHEDULE_CATCH_UP": 3600,
        }
    )
    schedules.sync(backend)
    Schedule.objects.update(created_at=at(2026, 1, 1))
    moments = [at(2026, 1, 1) + timedelta(minutes=7 * i) for i in range(52)]
    start = threading.Barrier(4)
    errors = []

    def worker():
        try:
            start.wait(timeout=10)
            for now in moments:
                schedules.enqueue_due(backend, now=now)
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors
    ticks = list(Job.objects.values_list("scheduled_for", flat=True))
    assert len(ticks) == len(set(ticks))
    expected = [at(2026, 1, 1) + timedelta(minutes=10 * i) for i in range(1, 36)]
    assert sorted(ticks) == expected  # every tick up to 05:57, each once


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {
                "SCHEDULES": {
                    "bad-cron": {
                        "task": "tests.tasks.tick",
                        "cron": "every day",
                        "args": ["x"],
                    },
                    "bad-zone": {
                        "task": "tests.tasks.tick",
                        "cron": "* * * * *",
                        "timezone": "Nowhere/City",
                        "args": ["x"],
                    },
                    "bad-task": {"task": "tests.tasks.missing", "cron": "* * * * *"},
                }
            },
        }
    }
)
def test_invalid_schedules_are_check_errors():
    messages = task_backends["default"].check()
    ids = sorted(message.id for message in messages)
    assert ids == ["django_jobs.E005", "django_jobs.E006", "django_jobs.E007"]
    assert all(isinstance(m, checks.Error) for m in messages)
    assert any("'bad-cron'" in m.msg and "every day" in m.msg for m in messages)


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "QUEUES": ["default"],
            "OPTIONS": {
                "SCHEDULES": {
                    "other-queue": {
                        "task": "tests.tasks.tick",
                        "cron": "* * * * *",
                        "args": ["x"],
                        "queue": "reports",
                    },
                    "too-urgent": {
                        "task": "tests.tasks.tick",
                        "cron": "* * * * *",
                        "args": ["x"],
                        "priority": 500,
                    },
                    "no-args": {"task": "tests.tasks.tick", "cron": "* * * * *"},
                    "bad-kwargs": {
                        "task": "tests.tasks.tick",
                        "cron": "* * * * *",
                        "kwargs": {"name": "x", "colour": "red"},
                    },
                    "fine": {
                        "task": "tests.tasks.tick",
                        "cron": "* * * * *",
                        "kwargs": {"name": "x"},
                    },
                }
            },
        }
    }
)
def test_schedules_that_cannot_enqueue_their_job_are_check_errors():
    messages = {
        message.msg.split("]: ")[0].rsplit("[", 1)[1]: message
        for message in task_backends["default"].check()
    }
    assert {name: m.id for name, m in messages.items()} == {
        "'other-queue'": "django_jobs.E009",
        "'too-urgent'": "django_jobs.E009",
        "'no-args'": "django_jobs.E010",
        "'bad-kwargs'": "django_jobs.E010",
    }
    assert "priority must be a whole number" in messages["'too-urgent'"].msg
    assert "missing a required argument: 'name'" in messages["'no-args'"].msg
