"""The enqueue's trace context on the job row: written by the INSERT, kept
through the history (PostgreSQL), and enqueue hooks that misbehave."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from django_jobs import queue
from django_jobs.compat import task_backends
from django_jobs.hook_calls import Hooks
from django_jobs.models import Job
from django_jobs.queue import history
from tests import hooks_under_test as under_test
from tests import tasks

HOT = Job._meta.db_table
CONTEXT = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}


@pytest.fixture(scope="module", autouse=True)
def sdk():
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        trace.set_tracer_provider(TracerProvider())


@pytest.fixture
def hooked(monkeypatch):
    """The default backend with these hooks after its own."""
    backend = task_backends["default"]

    def use(*objects):
        named = [(type(each).__name__, each) for each in objects]
        own = [(name, hook) for name, hook in zip(
            backend.hooks.names, _hooks(backend), strict=True
        )]  # fmt: skip
        monkeypatch.setitem(backend.__dict__, "hooks", Hooks(own + named, 0.5))

    return use


def _hooks(backend):
    return [hook for _, hook in _configured(backend)]


def _configured(backend):
    from django_jobs.hook_calls import configured

    return configured(backend.config)


def test_a_job_enqueued_inside_a_span_keeps_its_context(db):
    with trace.get_tracer("tests").start_as_current_span("request") as span:
        result = tasks.add.enqueue(1, 2)
        trace_id = f"{span.get_span_context().trace_id:032x}"
    context = Job.objects.get(pk=result.id).trace_context
    assert set(context) <= {"traceparent", "tracestate", "baggage"}
    assert context["traceparent"].split("-")[1] == trace_id


def test_a_job_enqueued_outside_any_span_keeps_nothing(db):
    result = tasks.add.enqueue(1, 2)
    assert Job.objects.get(pk=result.id).trace_context is None


def test_many_jobs_of_one_enqueue_share_its_context(db):
    backend = task_backends["default"]
    with trace.get_tracer("tests").start_as_current_span("request"):
        results = backend.enqueue_many(tasks.add, [((1, 2), {}), ((3, 4), {})])
    contexts = [Job.objects.get(pk=r.id).trace_context for r in results]
    assert contexts[0] == contexts[1]
    assert contexts[0]["traceparent"]


@pytest.mark.parametrize("bad", [under_test.Raising, under_test.Garbage])
def test_an_enqueue_hook_that_misbehaves_loses_no_job(db, hooked, caplog, bad):
    hooked(bad())
    with trace.get_tracer("tests").start_as_current_span("request"):
        result = tasks.add.enqueue(1, 2)
    job = Job.objects.get(pk=result.id)
    assert job.args == [1, 2]
    assert job.trace_context["traceparent"]  # the tracing hook's, untouched
    assert f"hook {bad.__name__}" in caplog.text


def test_after_enqueue_hears_of_a_failed_insert(db, hooked, monkeypatch):
    heard = []

    class Listen:
        def after_enqueue(self, enqueue):
            heard.append(type(enqueue.error).__name__)

    hooked(Listen())

    def broken(*args, **kwargs):
        raise RuntimeError("the database said no")

    monkeypatch.setattr(queue, "insert", broken)
    with pytest.raises(RuntimeError):
        tasks.add.enqueue(1, 2)
    assert heard == ["RuntimeError"]


@pytest.mark.postgres
def test_the_history_keeps_the_trace_context(db):
    """A day table made before the column existed gets it from its parent,
    last, as the parent does: the move's SELECT * lines up."""
    with connection.cursor() as cursor:
        for name in history.tables().values():
            cursor.execute(f'DROP TABLE "{name}"')
        cursor.execute(f'ALTER TABLE "{HOT}" DROP COLUMN trace_context')
        old_day = history.create(history.day_of(timezone.now()))
        cursor.execute(f'ALTER TABLE "{HOT}" ADD COLUMN trace_context jsonb NULL')
    job = queue.enqueue(task_path="tests.tasks.add", args=[1, 2], trace_context=CONTEXT)
    (claimed,) = queue.claim(worker_id="w1")
    queue.complete(claimed.pk, token=claimed.claim_token, return_value=3)
    assert history.move(before=timezone.now() + timedelta(seconds=1)) == 1
    with connection.cursor() as cursor:
        cursor.execute(
            f'SELECT tableoid::regclass::text FROM "{HOT}" WHERE id = %s', [job.pk]
        )
        assert cursor.fetchone()[0] == old_day
    moved = Job.objects.get(pk=job.pk)
    assert (moved.trace_context, moved.return_value, moved.args) == (CONTEXT, 3, [1, 2])
