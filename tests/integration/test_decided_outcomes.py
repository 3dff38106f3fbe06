"""Outcomes no child reports reach the on_outcome hooks: jobs the rescuer
takes back from dead workers and expired reservations (failure "lost"), and
jobs ended because their workflow missed its deadline ("workflow deadline"),
in the hooks' thread, with the tracing hook's span in the job's trace."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from opentelemetry import trace

from django_jobs import queue
from django_jobs.compat import task_backends
from django_jobs.hook_calls import Hooks
from django_jobs.models import Job, Workflow
from django_jobs.queue.duties import rescue_jobs
from django_jobs.tracing import Tracing
from django_jobs.worker.duties import Rescuer
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.outcome_hooks import OutcomeHooks
from tests.acceptance.conftest import wait_for
from tests.hooks_under_test import Seen
from tests.otel_spans import in_memory_spans
from tests.workflow_tasks import pipeline

ENQUEUE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def spans():
    return in_memory_spans()


@pytest.fixture
def seen(monkeypatch):
    """The default backend's hooks: the tracing, then one that keeps what it
    is told; the OutcomeHooks the supervisor would give the rescuer."""
    backend = task_backends["default"]
    seen = Seen()
    hooks = Hooks([("tracing", Tracing()), ("seen", seen)], 0.5)
    monkeypatch.setitem(backend.__dict__, "hooks", hooks)
    seen.rescuer = Rescuer(WorkerOptions(backend=backend), outcomes=OutcomeHooks(hooks))
    return seen


def lost(claimed, max_attempts: int) -> Job:
    """A job claimed by a worker whose reservation ran out a day ago."""
    job = claimed(max_attempts=max_attempts)
    Job.objects.filter(pk=job.pk).update(
        reserved_until=timezone.now() - timedelta(days=1),
        trace_context={"traceparent": ENQUEUE},
    )
    return job


def test_rescue_jobs_says_what_it_wrote(claimed):
    again, ended = lost(claimed, 2), lost(claimed, 1)
    rescued = rescue_jobs(backoff=(0, 0))
    by_id = {job["id"]: job for job in rescued.jobs}
    assert set(by_id) == {again.pk, ended.pk}
    assert (by_id[again.pk]["then"], by_id[ended.pk]["then"]) == ("retried", "buried")
    for job in by_id.values():
        assert job["attempts"] == 1
        assert job["task_path"] == "tests.tasks.noop"
        assert job["trace_context"] == {"traceparent": ENQUEUE}
        assert job["error"]["exception_class_path"].endswith("ReservationExpired")
    assert rescued.counts() == {"retried": 1, "buried": 1, "deleted": 0}
    assert queue.rescue() == {"retried": 0, "buried": 0, "deleted": 0}  # as before


def test_the_rescuer_hands_lost_jobs_to_the_outcome_hooks(claimed, seen, spans):
    again, ended = lost(claimed, 2), lost(claimed, 1)
    spans.clear()
    assert seen.rescuer.run_once() == {"retried": 1, "buried": 1, "deleted": 0}
    wait_for(lambda: len(seen.outcomes) == 2, timeout=10)
    assert seen.threads == {"django_jobs on_outcome hooks"}
    outcomes = {outcome.job_id: outcome for outcome in seen.outcomes}
    assert (outcomes[again.pk].then, outcomes[ended.pk].then) == ("retried", "buried")
    assert {o.failure for o in outcomes.values()} == {"lost"}
    assert outcomes[ended.pk].final
    assert not outcomes[again.pk].final
    assert (
        outcomes[ended.pk].error["exception_class_path"].endswith("ReservationExpired")
    )
    buried = wait_for(
        lambda: [s for s in spans.get_finished_spans() if s.name == "buried noop"],
        timeout=10,
    )[0]
    assert f"{buried.context.trace_id:032x}" == ENQUEUE.split("-")[1]
    assert buried.status.status_code == trace.StatusCode.ERROR
    (event,) = buried.events
    assert (event.name, event.attributes["django_jobs.failure"]) == (
        "job.buried", "lost",
    )  # fmt: skip


def test_a_missed_workflow_deadline_reaches_the_outcome_hooks(db, seen):
    flow, _, matched, _ = pipeline(deadline=timedelta(hours=4))
    Workflow.objects.filter(pk=flow.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    seen.rescuer.run_once()  # its steps' own deadline has not passed
    steps = set(Job.objects.filter(workflow=flow).values_list("pk", flat=True))
    wait_for(lambda: len(seen.outcomes) == len(steps), timeout=10)
    assert {outcome.job_id for outcome in seen.outcomes} == steps
    assert {(o.then, o.failure) for o in seen.outcomes} == {
        ("expired", "workflow deadline")
    }
    mine = next(o for o in seen.outcomes if o.job_id == int(matched.id))
    assert mine.error["exception_class_path"].endswith("WorkflowDeadlineMissed")
    assert mine.task_path == "tests.workflow_tasks.match"


def test_miss_deadlines_says_which_workflows_and_jobs(db):
    flow, *_ = pipeline(deadline=timedelta(hours=4))
    Workflow.objects.filter(pk=flow.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    failed, ended = queue.workflows.miss_deadlines()
    assert failed == [flow.pk]
    assert len(ended) == Job.objects.filter(workflow=flow).count()
    assert {job["then"] for job in ended.jobs} == {"expired"}
    assert queue.workflows.missed_deadlines() == 0  # its count, as before
