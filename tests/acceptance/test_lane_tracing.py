"""Hooks and traces of async lane jobs, with real workers: each job's
``around_run`` hooks run around its own call in its own asyncio task, so
its spans nest under its own run span while its siblings run; spans leave
the long-lived lane child without an export per job, and before it ends
(its ``os._exit`` included); its captured lines carry its ids."""

from __future__ import annotations

import json

import pytest
from opentelemetry import trace

from django_jobs.models import Job
from tests.acceptance.conftest import wait_for
from tests.acceptance.test_hooks import notes
from tests.acceptance.test_tracing import by_name, read_spans, web_spans  # noqa: F401
from tests.traced_lane_tasks import traced_exit, traced_failure, traced_nap

pytestmark = [pytest.mark.timeout(180), pytest.mark.database_agnostic]
LANE = ("--queue", "lane", "--concurrency", "1", "--json-logs")


def lane_worker(start_worker, tmp_path, *hooks: str):
    """A traced worker of the lane's queue (one lane child), with ``hooks``
    after the tracing; its spans' file and its hooks' notes."""
    spans, log = tmp_path / "spans.jsonl", tmp_path / "hooks.jsonl"
    worker = start_worker(
        *LANE, "--burst",
        DJANGO_SETTINGS_MODULE="tests.tracing_settings",
        HOOKS_UNDER_TEST=",".join(f"tests.hooks_under_test.{h}" for h in hooks),
        HOOK_TEST_LOG=str(log), OTEL_TEST_SPANS=str(spans),
    )  # fmt: skip
    return worker, spans, log


def test_each_lane_job_has_its_own_run_span_and_hooks(
    start_worker,
    tmp_path,
    web_spans,  # noqa: F811
):
    with trace.get_tracer("tests").start_as_current_span("GET /lane") as request:
        naps = [int(traced_nap.enqueue(f"nap{n}").id) for n in range(5)]
        failed = int(traced_failure.enqueue().id)
    trace_id = f"{request.get_span_context().trace_id:032x}"
    worker, spans_path, log = lane_worker(start_worker, tmp_path, "Recording")
    assert worker.wait(120) == 0, worker.output
    assert {Job.objects.get(pk=pk).state for pk in naps} == {"done"}
    spans = wait_for(
        lambda: (
            len(by_name(found := read_spans(spans_path), "run traced_nap")) == 5
            and found
        ),
        timeout=30,
        message="the lane's spans",
    )
    ids_seen = [span["context"]["span_id"] for span in spans]
    assert len(ids_seen) == len(set(ids_seen)), "a span was exported twice"
    runs = {
        int(s["attributes"]["messaging.message.id"]): s
        for s in by_name(spans, "run traced_nap")
    }
    assert set(runs) == set(naps)
    for n, pk in enumerate(naps):
        run = runs[pk]
        assert run["context"]["trace_id"] == "0x" + trace_id
        assert run["kind"] == "SpanKind.CONSUMER"
        inside = by_name(spans, f"inside nap{n}")
        assert len(inside) == 1
        # Its own run's child, though five ran at once in one loop.
        assert inside[0]["parent_id"] == run["context"]["span_id"]
    failure = by_name(spans, "run traced_failure")[0]
    assert failure["status"]["status_code"] == "ERROR"
    assert "exception" in [e["name"] for e in failure["events"]]

    seen = notes(log)
    starts = [n for n in seen if n["at"] == "run start"]
    ends = {n["job"]: n["ok"] for n in seen if n["at"] == "run end"}
    assert sorted(n["job"] for n in starts) == sorted([*naps, failed])
    assert ends == {**dict.fromkeys(naps, True), failed: False}
    assert len({n["pid"] for n in starts}) == 1  # one lane child ran them all
    assert worker.pid not in {n["pid"] for n in starts}

    # The jobs' captured lines carry their job's id and its run's ids.
    lines = [json.loads(x) for x in worker.output.splitlines() if x[:1] == "{"]
    captured = [x for x in lines if "inside the lane job" in x["message"]]
    assert len(captured) == 5
    for line in captured:
        run = runs[line["job_id"]]
        assert line["trace_id"] == trace_id
        assert line["span_id"] == run["context"]["span_id"][2:]


@pytest.mark.parametrize("bad", ["Hanging", "Raising", "Garbage", "Twice"])
def test_a_lane_hook_that_misbehaves_changes_nothing(start_worker, tmp_path, bad):
    naps = [int(traced_nap.enqueue(f"bad{n}", 0.05).id) for n in range(3)]
    worker, _, log = lane_worker(start_worker, tmp_path, bad, "Recording")
    assert worker.wait(120) == 0, worker.output
    assert {Job.objects.get(pk=pk).state for pk in naps} == {"done"}
    assert f"hook tests.hooks_under_test.{bad}" in worker.output
    ends = [n for n in notes(log) if n["at"] == "run end"]
    assert sorted(n["job"] for n in ends) == naps
    if bad == "Hanging":  # stopped within half the block limit, then left out
        assert "took more than 0.75 s" in worker.output
        lines = [x for x in worker.output.splitlines() if "took more than" in x]
        assert len({json.loads(x)["job_id"] for x in lines}) == 1  # then benched
        assert "will be replaced" not in worker.output  # no retired lane


def test_lane_spans_leave_when_a_job_ends_the_process(start_worker, tmp_path):
    with trace.get_tracer("tests").start_as_current_span("GET /exit"):
        exiting = int(traced_exit.enqueue(1.0).id)
        sibling = int(traced_nap.enqueue("sibling", 2.0).id)
        quick = int(traced_nap.enqueue("quick", 0.05).id)
    worker, spans_path, _ = lane_worker(start_worker, tmp_path)
    assert worker.wait(120) == 0, worker.output
    assert Job.objects.get(pk=exiting).state == "buried"
    spans = wait_for(
        lambda: by_name(found := read_spans(spans_path), "run traced_exit") and found,
        timeout=30,
        message="the spans of the lane that exited",
    )
    exited = by_name(spans, "run traced_exit")
    assert len(exited) == 1
    assert exited[0]["status"]["status_code"] == "ERROR"
    assert "job.attempt.crashed" in [e["name"] for e in exited[0]["events"]]
    runs = by_name(spans, "run traced_nap")
    ids = {int(s["attributes"]["messaging.message.id"]) for s in runs}
    assert quick in ids  # ended before the exit, exported with it
    assert sibling in ids  # open at the exit: ended as a crash, then again run
    ids_seen = [span["context"]["span_id"] for span in spans]
    assert len(ids_seen) == len(set(ids_seen))
