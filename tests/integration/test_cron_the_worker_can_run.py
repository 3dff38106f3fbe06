"""A cron expression that passes ``check`` is one a worker can run.

croniter accepts more than a worker can use: seven fields (a year, and the
wrong order for expressions written for Quartz or Spring) and expressions no
date matches (``0 0 31 2 *``). ``check``, the admin's form and the worker
refuse them in the same words; a worker that runs one anyway (checks
skipped, a row written by hand) logs one clear line and skips it.
"""

import logging
from datetime import UTC, datetime

import pytest
from django.core import checks
from django.test import override_settings

from django_jobs import schedules
from django_jobs.backend import JobsBackend
from django_jobs.compat import task_backends
from django_jobs.models import Job, Schedule
from django_jobs.schedules import InvalidSchedule, check_cron
from tests.admin.test_schedules_and_batches import SCHEDULES, form

NOW = datetime(2026, 1, 1, 3, 5, tzinfo=UTC)
NEVER = "0 0 31 2 *"  # the 31st of February
# Noon every day of 2030 to Quartz (seconds first); croniter would fire it
# every second of the first minute of each 12th, at midnight.
SEVEN_FIELDS = "0 0 12 * * * 2030"


@pytest.mark.parametrize(
    "expression",
    ["*/5 * * * *", "* * * * * */10", "@daily", "0 0 29 2 *", "0 0 L * *"],
)
def test_crons_a_worker_runs_pass(expression):
    check_cron(expression)


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        (SEVEN_FIELDS, "has 7 fields; a schedule's cron expression has five"),
        (NEVER, "'0 0 31 2 *' never fires: no date from now on matches it."),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 * *", "is not a valid cron expression"),
    ],
)
def test_crons_a_worker_cannot_run_are_refused(expression, words):
    with pytest.raises(InvalidSchedule) as refused:
        check_cron(expression)
    assert words in str(refused.value)


@override_settings(
    TASKS={
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {
                "SCHEDULES": {
                    "never": {"task": "tests.tasks.tick", "cron": NEVER, "args": ["x"]},
                    "quartz": {
                        "task": "tests.tasks.tick",
                        "cron": SEVEN_FIELDS,
                        "args": ["x"],
                    },
                    "fine": {"task": "tests.tasks.tick", "cron": "0 3 * * *"},
                }
            },
        }
    }
)
def test_check_reports_them_as_e005():
    messages = task_backends["default"].check()
    by_schedule = {m.msg.split("]: ")[0].rsplit("[", 1)[1]: m for m in messages}
    assert sorted(by_schedule) == ["'fine'", "'never'", "'quartz'"]
    assert {by_schedule[name].id for name in ("'never'", "'quartz'")} == {
        "django_jobs.E005"
    }
    assert all(isinstance(m, checks.Error) for m in messages)
    assert "never fires" in by_schedule["'never'"].msg
    assert "has 7 fields" in by_schedule["'quartz'"].msg
    assert by_schedule["'fine'"].id == "django_jobs.E010"  # no args: unrelated


def test_the_admin_form_refuses_them(admin_client):
    for cron, words in ((NEVER, "never fires"), (SEVEN_FIELDS, "has 7 fields")):
        response = admin_client.post(f"{SCHEDULES}add/", form(cron=cron))
        assert response.status_code == 200, cron
        assert words in response.content.decode(), cron
    assert not Schedule.objects.exists()


@pytest.mark.parametrize("cron", [NEVER, "0 0 1 1 * 0 2020"])
def test_a_worker_logs_one_clear_line_and_skips_it(db, caplog, cron):
    """Checks skipped, or a row written by hand: no CroniterBadDateError."""
    backend = JobsBackend("default", {"QUEUES": ["default"], "OPTIONS": {}})
    start = datetime(2025, 12, 31, tzinfo=UTC)
    Schedule.objects.create(
        name="never", task_path="tests.tasks.tick", cron=cron, args=["n"]
    )
    Schedule.objects.create(
        name="hourly", task_path="tests.tasks.tick", cron="0 * * * *", args=["h"]
    )
    Schedule.objects.update(created_at=start)
    try:
        rounds = [schedules.enqueue_due(backend, now=NOW) for _ in range(3)]
    finally:
        schedules.problems.clear()
    assert rounds == [1, 0, 0]
    assert Job.objects.get().args == ["h"]
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in logged] == [
        f"schedule 'never' cannot enqueue its jobs: InvalidSchedule: {cron!r} never "
        "fires: no date from now on matches it. (logged again only if the error "
        "changes; the other schedules go on)"
    ]
    assert logged[0].exc_info is None
