"""The Sentry hook in real worker processes, events sent to a file."""

from __future__ import annotations

import json

import pytest

from tests.traced_tasks import always_fails, traced_noop

pytestmark = pytest.mark.timeout(180)


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
