"""The hooks' runner: a hook that raises, hangs or returns garbage is logged
by name and changes nothing."""

from __future__ import annotations

import json
import logging
import time

import pytest

from django_jobs import hook_calls
from django_jobs.attempts import Ended, Kind
from django_jobs.hook_calls import Hooks
from django_jobs.hooks import Enqueue, HookNotFound, Run, load
from django_jobs.logging import JSONFormatter, log_fields
from django_jobs.trace_ids import from_traceparent
from tests import hooks_under_test as under_test
from tests.tasks import noop

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def enqueue() -> Enqueue:
    return Enqueue(noop, "default", "default", 0, 300, 1)


def run() -> Run:
    return Run(1, noop, "default", "default", 1, 3, 0, 300, None)


def hooks(*objects, timeout: float = 0.5) -> Hooks:
    return Hooks([(type(each).__name__, each) for each in objects], timeout)


def test_hooks_that_raise_are_logged_by_name_and_skipped(caplog):
    calls = []

    class Later:
        def before_enqueue(self, enqueue):
            calls.append("later")

    runner = hooks(under_test.Raising(), Later())
    with caplog.at_level(logging.ERROR, "django_jobs.hooks"):
        runner.before_enqueue(enqueue())
        runner.after_enqueue(enqueue())
        with runner.running(run()) as ran:
            ran.ended = Ended(None, "ok")
        runner.on_outcome(object())
    assert calls == ["later"]
    said = caplog.text
    for moment in (
        "before_enqueue",
        "after_enqueue",
        "around_run (its end)",
        "on_outcome",
    ):
        assert f"hook Raising: {moment} raised" in said


def test_a_hook_that_hangs_is_stopped_and_left_out_for_a_while(caplog):
    runner = hooks(under_test.Hanging(), timeout=0.2)
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, "django_jobs.hooks"):
        runner.before_enqueue(enqueue())
        runner.before_enqueue(enqueue())  # benched: not called again
    assert time.monotonic() - started < 2
    assert "hook Hanging: before_enqueue took more than 0.2 s" in caplog.text
    assert caplog.text.count("took more than") == 1


def test_garbage_is_refused(caplog):
    job = enqueue()
    runner = hooks(under_test.Garbage(), under_test.Twice())
    with caplog.at_level(logging.ERROR, "django_jobs.hooks"):
        runner.before_enqueue(job)
        with runner.running(run()) as ran:
            ran.ended = Ended(None, 1)
    assert job.trace_context == {}  # 42 was not kept
    assert "hook Garbage: before_enqueue left a trace context" in caplog.text
    assert "around_run returned 'int', not a generator" in caplog.text
    assert "hook Twice: around_run yielded more than once" in caplog.text


def test_around_run_sees_how_the_call_ended():
    seen = []

    class Watch:
        def around_run(self, run):
            seen.append("start")
            ended = yield
            seen.append(ended.kind)

    with hooks(Watch()).running(run()) as ran:
        ran.ended = Ended(Kind.RAISED, error={"exception_class_path": "x"})
    assert seen == ["start", Kind.RAISED]


def test_a_job_that_exits_still_ends_the_open_hooks():
    seen = []

    class Watch:
        def around_run(self, run):
            ended = yield
            seen.append((ended.kind, type(ended.exception).__name__))

    runner = hooks(Watch())
    context = runner.running(run())
    context.__enter__()
    hook_calls.close_open_runs(3)
    assert seen == [(Kind.CRASHED, "JobExited")]


def test_loading_names_what_is_wrong():
    with pytest.raises(HookNotFound, match="does not import"):
        load("tests.hooks_under_test.Missing")
    with pytest.raises(HookNotFound, match="none of the methods"):
        load("tests.hooks_under_test.Nothing")
    assert isinstance(load("tests.hooks_under_test.Recording"), under_test.Recording)


def test_log_lines_carry_the_trace_of_their_job():
    class Row:
        pk, task_path, attempts = 7, "tests.tasks.noop", 1
        trace_context = {"traceparent": TRACEPARENT}

    record = logging.LogRecord("django_jobs.job", logging.INFO, "", 0, "done", (), None)
    record.__dict__.update(log_fields(Row()))
    line = json.loads(JSONFormatter().format(record))
    assert line["job_id"] == 7
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert line["span_id"] == "b7ad6b7169203331"
    Row.run_traceparent = TRACEPARENT[:-19] + "00f067aa0ba902b7-01"
    assert log_fields(Row())["span_id"] == "00f067aa0ba902b7"


def test_a_traceparent_that_is_not_one_gives_nothing():
    assert from_traceparent("garbage") == {}
    assert from_traceparent(None) == {}
    assert from_traceparent("00-" + "0" * 32 + "-b7ad6b7169203331-01") == {}
