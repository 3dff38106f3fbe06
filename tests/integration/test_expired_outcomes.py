"""Jobs that pass their deadline unstarted reach the on_outcome hooks (then
"expired"), in the hooks' thread, and the tracing hook's span joins their
enqueue's trace."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.utils import timezone
from opentelemetry import trace

from django_jobs import queue
from django_jobs.compat import task_backends
from django_jobs.hook_calls import Hooks
from django_jobs.models import Job
from django_jobs.queue.duties import expire_jobs
from django_jobs.tracing import Tracing
from django_jobs.worker.duties import Rescuer
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.outcome_hooks import OutcomeHooks
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.hooks_under_test import Seen
from tests.otel_spans import in_memory_spans

ENQUEUE = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(scope="module")
def spans():
    return in_memory_spans()


def late(on_failure: str = "bury", context: dict | None = None) -> int:
    result = tasks.add.using(expires=60, on_failure=on_failure).enqueue(1, 2)
    Job.objects.filter(pk=result.id).update(
        expires_at=timezone.now() - timedelta(seconds=1), trace_context=context
    )
    return int(result.id)


def test_expire_jobs_says_which_jobs_it_buried_or_deleted(db):
    kept = late(context={"traceparent": ENQUEUE})
    gone = late(on_failure="delete")
    tasks.add.using(expires=3600).enqueue(3, 4)  # not late
    expired = expire_jobs()
    assert expired.count == 2
    by_id = {job["id"]: job for job in expired.jobs}
    assert set(by_id) == {kept, gone}
    assert by_id[kept]["deleted"] is False
    assert by_id[kept]["trace_context"] == {"traceparent": ENQUEUE}
    assert by_id[kept]["task_path"] == "tests.tasks.add"
    assert by_id[kept]["attempts"] == 0
    assert by_id[gone]["deleted"] is True
    assert expired.error["exception_class_path"].endswith("JobExpired")
    assert Job.objects.get(pk=kept).state == "buried"
    assert not Job.objects.filter(pk=gone).exists()
    assert queue.expire() == 0  # its count, as before


def test_the_rescuer_hands_expired_jobs_to_the_outcome_hooks(db, spans, monkeypatch):
    backend = task_backends["default"]
    seen = Seen()
    hooks = Hooks([("tracing", Tracing()), ("seen", seen)], 0.5)
    monkeypatch.setitem(backend.__dict__, "hooks", hooks)
    recorder_s = OutcomeHooks(hooks)  # as the supervisor's Recorder makes it
    kept = late(context={"traceparent": ENQUEUE})
    gone = late(on_failure="delete")
    spans.clear()
    # As the supervisor makes it: the Recorder's hooks, one thread for both.
    Rescuer(WorkerOptions(backend=backend), outcomes=recorder_s).run_once()
    wait_for(lambda: len(seen.outcomes) == 2, timeout=10)
    assert seen.threads == {"django_jobs on_outcome hooks"}
    outcomes = {outcome.job_id: outcome for outcome in seen.outcomes}
    assert {o.then for o in outcomes.values()} == {"expired"}
    assert {o.failure for o in outcomes.values()} == {"deadline"}
    assert outcomes[kept].trace_context == {"traceparent": ENQUEUE}
    assert outcomes[kept].final
    assert outcomes[kept].attempt == 0
    assert outcomes[gone].error["exception_class_path"].endswith("JobExpired")
    ended = wait_for(
        lambda: [s for s in spans.get_finished_spans() if s.name == "expired add"],
        timeout=10,
    )
    traced = next(s for s in ended if s.attributes["messaging.message.id"] == str(kept))
    assert f"{traced.context.trace_id:032x}" == ENQUEUE.split("-")[1]
    assert f"{traced.parent.span_id:016x}" == ENQUEUE.split("-")[2]
    assert traced.status.status_code == trace.StatusCode.ERROR
    assert [event.name for event in traced.events] == ["job.expired"]


def test_no_outcome_hooks_no_thread(db, monkeypatch):
    backend = task_backends["default"]
    monkeypatch.setitem(backend.__dict__, "hooks", Hooks([], 0.5))
    late()
    before = {thread.name for thread in threading.enumerate()}
    Rescuer(WorkerOptions(backend=backend)).run_once()  # as without on_outcome
    assert Job.objects.filter(state="buried").count() == 1
    assert {thread.name for thread in threading.enumerate()} <= before
