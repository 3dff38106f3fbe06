"""Traces across real worker processes, exported by the SDK to a file.

The worker runs tests/tracing_settings.py: a BatchSpanProcessor, as a
project sets one up, which the zygote must not keep (its thread) and whose
spans every child must export before it ends, ``os._exit`` included.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from opentelemetry import trace

from django_jobs.models import Job
from django_jobs.states import State
from tests.acceptance.conftest import wait_for
from tests.otel_spans import in_memory_spans
from tests.traced_tasks import always_fails, enqueue_another, exits_hard, traced_noop

pytestmark = [pytest.mark.timeout(180), pytest.mark.database_agnostic]


@pytest.fixture(scope="module")
def web_spans():
    """This process's spans (the "web request" and its enqueues), in memory."""
    return in_memory_spans()


def read_spans(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def traced_worker(start_worker, tmp_path, **variables):
    spans = tmp_path / "spans.jsonl"
    worker = start_worker(
        "--burst", "--json-logs",
        DJANGO_SETTINGS_MODULE="tests.tracing_settings",
        OTEL_TEST_SPANS=str(spans), **variables,
    )  # fmt: skip
    return worker, spans


def by_name(spans: list[dict], name: str) -> list[dict]:
    return [span for span in spans if span["name"] == name]


def test_one_trace_from_the_request_to_each_attempt(start_worker, tmp_path, web_spans):
    web_spans.clear()
    with trace.get_tracer("tests").start_as_current_span("GET /signup") as request:
        ids = {
            task.name: int(task.enqueue().id)
            for task in (traced_noop, enqueue_another, always_fails, exits_hard)
        }
    trace_id = f"{request.get_span_context().trace_id:032x}"
    enqueues = {
        span.attributes["messaging.message.id"]: span
        for span in web_spans.get_finished_spans()
        if span.name.startswith("enqueue ")
    }
    assert {span.kind for span in enqueues.values()} == {trace.SpanKind.PRODUCER}
    job = Job.objects.get(pk=ids["traced_noop"])
    enqueue_span = enqueues[str(job.pk)].get_span_context()
    assert job.trace_context["traceparent"].startswith(
        f"00-{trace_id}-{enqueue_span.span_id:016x}-"
    )

    worker, path = traced_worker(start_worker, tmp_path)
    assert worker.wait(120) == 0, worker.output
    assert Job.objects.get(pk=ids["always_fails"]).state == State.BURIED
    expected = {"run traced_noop": 2, "run always_fails": 2, "run exits_hard": 1}
    spans = wait_for(
        lambda: (
            (found := read_spans(path))
            and all(len(by_name(found, n)) >= k for n, k in expected.items())
            and by_name(found, "buried always_fails")
            and found
        ),
        timeout=30,
        message="the worker's spans",
    )
    ids_seen = [span["context"]["span_id"] for span in spans]
    assert len(ids_seen) == len(set(ids_seen)), "a span was exported twice"
    assert {span["context"]["trace_id"] for span in spans} == {"0x" + trace_id}

    first = by_name(spans, "run traced_noop")
    run = next(
        s for s in first if s["attributes"]["messaging.message.id"] == str(job.pk)
    )
    assert run["parent_id"] == f"0x{enqueue_span.span_id:016x}"
    assert run["kind"] == "SpanKind.CONSUMER"
    assert run["attributes"]["messaging.system"] == "django_jobs"
    assert run["attributes"]["messaging.destination.name"] == "default"
    assert run["attributes"]["django_jobs.attempt"] == 1
    assert run["attributes"]["django_jobs.task"] == "tests.traced_tasks.traced_noop"

    # The job enqueued by a job: its enqueue span is under the job's run.
    parent_run = by_name(spans, "run enqueue_another")[0]
    inner = by_name(spans, "enqueue traced_noop")[0]
    assert inner["parent_id"] == parent_run["context"]["span_id"]
    second = next(s for s in first if s is not run)
    assert second["parent_id"] == inner["context"]["span_id"]

    # Each attempt is a span of its own, in the one trace.
    attempts = by_name(spans, "run always_fails")
    assert sorted(s["attributes"]["django_jobs.attempt"] for s in attempts) == [1, 2]
    assert len({s["context"]["span_id"] for s in attempts}) == 2
    for attempt in attempts:
        assert attempt["status"]["status_code"] == "ERROR"
        exception = [e for e in attempt["events"] if e["name"] == "exception"]
        assert exception[0]["attributes"]["exception.message"] == "broken on purpose"
    buried = by_name(spans, "buried always_fails")[0]
    assert buried["status"]["status_code"] == "ERROR"
    assert buried["parent_id"] in {s["context"]["span_id"] for s in attempts}
    assert by_name(spans, "retried always_fails")

    # os._exit: the run span ended all the same, once.
    exited = by_name(spans, "run exits_hard")
    assert len(exited) == 1
    assert exited[0]["status"]["status_code"] == "ERROR"
    assert "job.attempt.crashed" in [e["name"] for e in exited[0]["events"]]

    # Log lines about a job carry its run's ids; the job's own lines too.
    lines = [json.loads(line) for line in worker.output.splitlines() if line[:1] == "{"]
    done = [
        line for line in lines
        if line.get("job_id") == job.pk and "done in" in line["message"]
    ]  # fmt: skip
    assert done[0]["trace_id"] == trace_id
    assert done[0]["span_id"] == run["context"]["span_id"][2:]
    captured = [line for line in lines if "inside the job" in line["message"]]
    assert captured
    assert all(line["trace_id"] == trace_id for line in captured)
    assert {line["job_id"] for line in captured} <= set(ids.values()) | {
        int(inner["attributes"]["messaging.message.id"])
    }


def test_a_linked_run_starts_a_trace_of_its_own(start_worker, tmp_path, web_spans):
    with trace.get_tracer("tests").start_as_current_span("GET /report"):
        job_id = int(traced_noop.enqueue().id)
    traceparent = Job.objects.get(pk=job_id).trace_context["traceparent"]
    worker, path = traced_worker(start_worker, tmp_path, TRACING_UNDER_TEST="link")
    assert worker.wait(120) == 0, worker.output
    spans = wait_for(lambda: by_name(read_spans(path), "run traced_noop"), timeout=30)
    run = spans[0]
    assert run["parent_id"] is None
    _, trace_id, span_id, _ = traceparent.split("-")
    assert run["context"]["trace_id"] != "0x" + trace_id
    assert [link["context"]["span_id"] for link in run["links"]] == ["0x" + span_id]


def test_a_job_without_a_trace_gets_a_root_span(start_worker, tmp_path):
    job_id = int(traced_noop.enqueue().id)  # no span is current here
    assert Job.objects.get(pk=job_id).trace_context is None
    worker, path = traced_worker(start_worker, tmp_path, OTEL_TEST_PROCESSOR="simple")
    assert worker.wait(120) == 0, worker.output
    spans = wait_for(lambda: by_name(read_spans(path), "run traced_noop"), timeout=30)
    assert len(spans) == 1
    assert spans[0]["parent_id"] is None
