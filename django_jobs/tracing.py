"""OpenTelemetry tracing of jobs, as a hook (docs/observability.rst).

Imported only when opentelemetry-api is installed and ``TRACING`` is not
"off" (see hooks.configured). It uses the API only: the SDK, its exporters
and its sampling are the project's choice, and without an SDK every span is
a no-op that costs next to nothing.

- ``enqueue <task>`` (PRODUCER), in the caller, when a span is current: its
  W3C context (traceparent, tracestate, baggage) is written on the job row,
  in the enqueue's own INSERT.
- ``run <task>`` (CONSUMER), in the job's child, for each attempt: a child
  of the enqueue span (TRACING "child") or the root of a trace of its own
  with a link to it ("link"). It is current while the task runs, so the
  task's own spans (ORM, HTTP clients) and the jobs it enqueues nest in it.
  A failed attempt sets its status to ERROR with the exception's event.
- ``retried <task>``, ``buried <task>``, ... in the supervisor, for what
  followed a failed attempt (or a job that expired): a short span under the
  run span (or under the enqueue span when no run reported one), carrying
  an event of the same name.
"""

from __future__ import annotations

import functools
from collections.abc import Generator
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from .hooks import Enqueue, Hook, Outcome, Run

SYSTEM = "django_jobs"
#: The keys of the trace context a job keeps.
KEYS = ("traceparent", "tracestate", "baggage")

tracer = trace.get_tracer("django_jobs")


class Tracing(Hook):
    """Spans for every job: ``TRACING`` "child" (default) or "link"."""

    def __init__(self, mode: str = "child") -> None:
        self.link = mode == "link"
        self.last_extracted: tuple[tuple, otel_context.Context] = ((None,), None)

    def before_enqueue(self, enqueue: Enqueue) -> None:
        if not trace.get_current_span().get_span_context().is_valid:
            return  # no trace to continue: the job keeps nothing
        task = enqueue.task
        span = tracer.start_span(
            f"enqueue {task.name}",
            kind=SpanKind.PRODUCER,
            attributes={
                **_messaging("send", enqueue.queue),
                "django_jobs.task": task.module_path,
                "django_jobs.priority": enqueue.priority,
                "django_jobs.ttr": enqueue.ttr,
                "messaging.batch.message_count": enqueue.count,
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span))
        enqueue.trace_context.update(
            {key: value for key, value in carrier.items() if key in KEYS}
        )
        enqueue.kept[self] = span

    def after_enqueue(self, enqueue: Enqueue) -> None:
        span = enqueue.kept.pop(self, None)
        if span is None:
            return
        if enqueue.error is not None:
            _failed(span, enqueue.error)
        elif len(enqueue.ids) == 1 and enqueue.ids[0] is not None:
            span.set_attribute("messaging.message.id", str(enqueue.ids[0]))
        span.end()

    def around_run(self, run: Run) -> Generator[None, Any, None] | None:
        if run.trace_context is None and not sdk_configured():
            return None  # nothing to continue, nothing to record
        return self._run(run)

    def _run(self, run: Run) -> Generator[None, Any, None]:
        parent = self.extracted(run.trace_context)
        links = []
        if self.link:
            enqueued = trace.get_current_span(parent).get_span_context()
            if enqueued.is_valid:
                links.append(Link(enqueued))
            parent = trace.set_span_in_context(trace.INVALID_SPAN, parent)
        span = tracer.start_span(
            f"run {run.task.name}",
            context=parent,
            kind=SpanKind.CONSUMER,
            links=links,
            attributes={
                **self.run_attributes(run.queue, run.task.module_path),
                "messaging.message.id": str(run.job_id),
                "django_jobs.attempt": run.attempt,
                "django_jobs.max_attempts": run.max_attempts,
                "django_jobs.priority": run.priority,
                "django_jobs.ttr": run.ttr,
            },
        )
        run.traceparent = traceparent(span)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            ended = yield
        finally:
            otel_context.detach(token)
        if ended is None or ended.ok:
            span.add_event("job.attempt.succeeded")
        else:
            span.add_event(f"job.attempt.{ended.kind.name.lower()}")
            _failed(span, ended.exception, ended.error)
        span.end()

    def extracted(self, carrier: dict[str, str] | None) -> otel_context.Context:
        """The context of a job's kept trace context. The last one is kept:
        a lane child runs many a job of one trace in a row (a fan-out), and
        a Context is immutable."""
        key = tuple(sorted(carrier.items())) if carrier else ()
        if self.last_extracted[0] != key:
            self.last_extracted = (key, propagate.extract(carrier or {}))
        return self.last_extracted[1]

    @functools.lru_cache(maxsize=256)  # noqa: B019  (one Tracing per backend, kept)
    def run_attributes(self, queue: str, task: str) -> dict[str, str]:
        """The attributes every run of ``task`` on ``queue`` shares."""
        return {**_messaging("process", queue), "django_jobs.task": task}

    def on_outcome(self, outcome: Outcome) -> None:
        if outcome.then == "done" or not sdk_configured():
            return
        context = dict(outcome.trace_context or {})
        if outcome.traceparent:
            context["traceparent"] = outcome.traceparent
        span = tracer.start_span(
            f"{outcome.then} {outcome.task_path.rpartition('.')[2]}",
            context=propagate.extract(context),
            attributes={
                **_messaging("settle", outcome.queue),
                "messaging.message.id": str(outcome.job_id),
                "django_jobs.task": outcome.task_path,
                "django_jobs.attempt": outcome.attempt,
                "django_jobs.max_attempts": outcome.max_attempts,
            },
        )
        attributes = {"django_jobs.failure": outcome.failure or ""}
        if outcome.error:
            attributes["error.type"] = outcome.error.get("exception_class_path", "")
        span.add_event(f"job.{outcome.then}", attributes)
        if outcome.then in ("buried", "deleted", "expired"):
            span.set_status(Status(StatusCode.ERROR, f"job {outcome.then}"))
        span.end()


def _messaging(operation: str, queue: str) -> dict[str, str]:
    """The messaging semantic conventions' attributes of an operation."""
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": operation,
        "messaging.operation.name": operation,
        "messaging.destination.name": queue,
    }


def _failed(span, exc: BaseException | None, error: dict | None = None) -> None:
    if exc is not None:
        span.record_exception(exc)
        span.set_attribute(
            "error.type", f"{type(exc).__module__}.{type(exc).__qualname__}"
        )
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
    else:
        span.set_status(
            Status(StatusCode.ERROR, (error or {}).get("exception_class_path"))
        )


def traceparent(span) -> str | None:
    """The W3C traceparent of ``span``; None for an invalid one."""
    context = span.get_span_context()
    if not context.is_valid:
        return None
    flags = int(context.trace_flags)
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{flags:02x}"


def sdk_configured() -> bool:
    """Whether a tracer provider (an SDK) was set: without one, spans are
    no-ops and a job without a trace context has nothing to record."""
    provider = trace.get_tracer_provider()
    return not isinstance(
        provider, trace.ProxyTracerProvider | trace.NoOpTracerProvider
    )
