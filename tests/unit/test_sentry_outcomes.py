"""Which outcomes the Sentry hooks report from the supervisor: only the
failures the job's own process could not report, once (no sentry_sdk call:
``report_outcome`` is replaced)."""

from __future__ import annotations

import pytest

from django_jobs import sentry
from django_jobs.hooks import DEADLINE, LOST, WORKFLOW_DEADLINE, Outcome

pytest.importorskip("sentry_sdk")


def outcome(then: str, failure: str | None, traceback: str = "") -> Outcome:
    return Outcome(
        job_id=7, task_path="shop.tasks.sync", queue="default", backend="default",
        attempt=2, max_attempts=2, then=then, failure=failure,
        error={"traceback": traceback, "exception_class_path": "x.Y"},
    )  # fmt: skip


@pytest.fixture
def reported(monkeypatch):
    sent = []
    monkeypatch.setattr(sentry, "report_outcome", lambda o, timeout: sent.append(o))
    return sent


@pytest.mark.parametrize(
    ("then", "failure", "traceback", "final", "every"),
    [
        ("buried", LOST, "WorkerLost: worker w1 stopped responding", True, True),
        ("retried", LOST, "ReservationExpired: ...", False, True),
        ("buried", "timed out", "JobTimeout: ...", True, True),
        ("buried", "over its limit", "MemoryLimit: ...", True, True),
        ("buried", "crashed", "ChildCrashed: ended (killed by signal 9", True, True),
        # An exit code: os._exit, which the child's own hook reported.
        ("buried", "crashed", "ChildCrashed: ended (exit code 3)", False, False),
        ("buried", "failed", "ValueError: reported by the child", False, False),
        ("expired", DEADLINE, "JobExpired: ...", False, False),
        ("expired", WORKFLOW_DEADLINE, "WorkflowDeadlineMissed: ...", False, False),
        ("done", None, "", False, False),
    ],
)
def test_what_the_supervisor_reports(reported, then, failure, traceback, final, every):
    sentry.ReportFinalFailures().on_outcome(outcome(then, failure, traceback))
    sentry.ReportEveryAttempt().on_outcome(outcome(then, failure, traceback))
    assert [type(o) for o in reported] == [Outcome] * (final + every)
