"""The Sentry hook in real worker processes, events sent to a file."""

from __future__ import annotations

import json
import os
import signal

import pytest

from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.traced_tasks import always_fails, traced_noop

pytestmark = [pytest.mark.timeout(180), pytest.mark.database_agnostic]


@pytest.mark.parametrize(
    ("hook", "reports"),
    [("ReportFinalFailures", [2]), ("ReportEveryAttempt", [1, 2])],
)
def test_a_failing_job_is_reported_as_configured(start_worker, tmp_path, hook, reports):
    failing = always_fails.enqueue()  # two attempts, both fail
    traced_noop.enqueue()
    events = tmp_path / "events.jsonl"
    worker = start_worker(
        "--burst",
        DJANGO_SETTINGS_MODULE="tests.sentry_settings",
        SENTRY_HOOK_UNDER_TEST=f"django_jobs.sentry.{hook}",
        SENTRY_TEST_EVENTS=str(events),
    )
    assert worker.wait(120) == 0, worker.output
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    # Only the hook's reports: no second one from Django's or the logging
    # integration, nor one for the job that succeeded.
    assert [int(event["tags"]["attempt"]) for event in sent] == reports
    for event in sent:
        assert str(event["tags"]["job_id"]) == str(failing.id)
        assert event["tags"]["task"] == "tests.traced_tasks.always_fails"
        assert event["tags"]["queue"] == "default"
        (exception,) = event["exception"]["values"]
        assert (exception["type"], exception["value"]) == (
            "ValueError", "broken on purpose",
        )  # fmt: skip


def test_a_job_buried_because_its_worker_died_is_reported_once(start_worker, tmp_path):
    """No process of the job's reports it: the rescuer of the next worker
    decides its end, and its on_outcome hook reports it."""
    held = tasks.sleep.using(max_attempts=1).enqueue(5)  # its orphan ends soon
    events = tmp_path / "events.jsonl"
    sentry = {
        "DJANGO_SETTINGS_MODULE": "tests.sentry_settings",
        "SENTRY_HOOK_UNDER_TEST": "django_jobs.sentry.ReportFinalFailures",
        "SENTRY_TEST_EVENTS": str(events),
    }
    first = start_worker(**sentry)
    wait_for(
        lambda: Job.objects.filter(pk=held.id, state="reserved").exists(),
        message="the first worker to claim the job",
    )
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    second = start_worker(**sentry)  # its rescuer: once the first is silent
    wait_for(
        lambda: Job.objects.filter(pk=held.id, state="buried").exists(),
        timeout=60,
        message="the dead worker's job to be taken back and buried",
    )
    wait_for(events.exists, timeout=30, message="the report")
    second.send(signal.SIGTERM)
    assert second.wait(60) == 0, second.output
    sent = [json.loads(line) for line in events.read_text().splitlines()]
    assert len(sent) == 1, sent
    (event,) = sent
    assert str(event["tags"]["job_id"]) == str(held.id)
    assert event["tags"]["task"] == "tests.tasks.sleep"
    assert event["tags"]["failure"] == "lost"
    assert event["level"] == "error"
    assert "WorkerLost" in event["message"] or "ReservationExpired" in event["message"]
