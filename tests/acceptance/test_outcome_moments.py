"""The outcomes no attempt decides, with real workers: a job that passed its
deadline unstarted (then "expired") and a running job cancelled from the
console (buried, failure "cancelled") reach the on_outcome hooks, and the
tracing hook's spans carry them, in the enqueue's trace."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from opentelemetry import trace

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.acceptance.test_hooks import hooked_worker, notes
from tests.acceptance.test_tracing import by_name, read_spans, web_spans  # noqa: F401
from tests.models import Record

pytestmark = pytest.mark.timeout(180)


def traced_hooked_worker(start_worker, tmp_path, *args):
    spans = tmp_path / "spans.jsonl"
    worker, log = hooked_worker(
        start_worker, tmp_path, "Recording", *args, OTEL_TEST_SPANS=str(spans)
    )
    return worker, log, spans


def test_an_expired_job_reaches_the_hooks_and_the_trace(
    start_worker,
    tmp_path,
    web_spans,  # noqa: F811
):
    with trace.get_tracer("tests").start_as_current_span("GET /late"):
        late = tasks.add.using(expires=60).enqueue(1, 2)
        gone = tasks.add.using(expires=60, on_failure="delete").enqueue(3, 4)
    Job.objects.filter(pk__in=[late.id, gone.id]).update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    context = Job.objects.get(pk=late.id).trace_context
    worker, log, path = traced_hooked_worker(start_worker, tmp_path)
    assert worker.wait(120) == 0, worker.output
    assert Job.objects.get(pk=late.id).state == "buried"
    assert not Job.objects.filter(pk=gone.id).exists()
    seen = wait_for(lambda: [n for n in notes(log) if n["at"] == "outcome"], timeout=30)
    assert {(n["job"], n["then"]) for n in seen} == {
        (int(late.id), "expired"),
        (int(gone.id), "expired"),
    }
    assert {n["pid"] for n in seen} == {worker.pid}
    spans = wait_for(
        lambda: len(found := by_name(read_spans(path), "expired add")) == 2 and found,
        timeout=30,
        message="the expired spans",
    )
    span = next(
        s for s in spans if s["attributes"]["messaging.message.id"] == str(late.id)
    )
    _, trace_id, enqueue_span, _ = context["traceparent"].split("-")
    assert span["context"]["trace_id"] == "0x" + trace_id
    assert span["parent_id"] == "0x" + enqueue_span
    assert span["status"]["status_code"] == "ERROR"
    assert [event["name"] for event in span["events"]] == ["job.expired"]


def test_a_cancelled_job_reaches_the_hooks_and_the_trace(
    start_worker,
    tmp_path,
    web_spans,  # noqa: F811
):
    with trace.get_tracer("tests").start_as_current_span("GET /cancel"):
        job = tasks.sleep.using(max_attempts=3).enqueue(60, key="cancel-traced")
    worker, log, path = traced_hooked_worker(start_worker, tmp_path)
    wait_for(lambda: Record.objects.filter(key="cancel-traced").exists())
    assert queue.cancel(int(job.id)) == 1
    assert worker.wait(60) == 0, worker.output
    assert Job.objects.get(pk=job.id).state == "buried"
    seen = wait_for(lambda: [n for n in notes(log) if n["at"] == "outcome"], timeout=30)
    assert [(n["job"], n["then"]) for n in seen] == [(int(job.id), "buried")]
    buried = wait_for(
        lambda: by_name(read_spans(path), "buried sleep"),
        timeout=30,
        message="the buried span",
    )
    assert len(buried) == 1
    event = buried[0]["events"][0]
    assert event["name"] == "job.buried"
    assert event["attributes"]["django_jobs.failure"] == "cancelled"
    assert buried[0]["status"]["status_code"] == "ERROR"
    trace_id = Job.objects.get(pk=job.id).trace_context["traceparent"].split("-")[1]
    assert buried[0]["context"]["trace_id"] == "0x" + trace_id
