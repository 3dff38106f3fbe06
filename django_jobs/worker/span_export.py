"""Spans across the fork: none lost, none sent twice, no thread in the zygote.

The OpenTelemetry SDK's ``BatchSpanProcessor`` exports from a thread, and
starts a new one in every forked process (``os.register_at_fork``): the
zygote would hold one, every child would start one, and a child's spans
still waiting in its queue die with it (a child ends with ``os._exit``,
which runs no atexit handler).

So the zygote, before it forks its first child, puts each batch processor
of the global tracer provider aside and keeps its exporter in a
``JobEndProcessor``: spans wait in a list, and go to the exporter in one
call when the child flushes, after each job's outcome is sent and again
when the process ends (``hook_calls.guard_exit`` flushes before
``os._exit``, the job's own call included). The batch processor's thread
in the zygote is stopped, and once it is gone no child starts one.
A ``SimpleSpanProcessor`` (which exports as each span ends) is left as it
is: it holds no thread. docs/observability.rst gives each way's cost per
job, measured by bench/tracing.py.

Nothing here imports OpenTelemetry: without its SDK loaded, each function
returns at once.
"""

from __future__ import annotations

import contextlib
import gc
import sys
from typing import Any

SDK = "opentelemetry.sdk.trace"

#: This process's JobEndProcessors (made in the zygote, inherited by children).
_buffers: list[JobEndProcessor] = []


class JobEndProcessor:
    """A span processor that exports a child's ended spans when told to."""

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self.spans: list[Any] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.context.trace_flags.sampled:
            self.spans.append(span)

    def flush(self) -> None:
        spans, self.spans = self.spans, []
        if spans:
            self.exporter.export(spans)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flush()
        return True

    def shutdown(self) -> None:
        self.flush()
        self.exporter.shutdown()


def prepare_fork_server() -> None:
    """In the zygote, before its first fork: no batch processor, no thread."""
    if SDK not in sys.modules:
        return
    provider = sys.modules["opentelemetry.trace"].get_tracer_provider()
    multi = getattr(provider, "_active_span_processor", None)
    processors = getattr(multi, "_span_processors", None)
    if not processors:
        return
    batch = sys.modules["opentelemetry.sdk.trace.export"].BatchSpanProcessor
    kept = []
    for processor in processors:
        if isinstance(processor, batch):
            _stop_thread(processor)
            processor = JobEndProcessor(processor.span_exporter)
            _buffers.append(processor)
        kept.append(processor)
    multi._span_processors = tuple(kept)
    del processors, processor, kept
    gc.collect()  # the batch processors go, and with them their fork hooks


def _stop_thread(processor: Any) -> None:
    """Stop the thread the fork started in this process (private SDK state,
    read carefully: an SDK that changed it keeps its thread instead)."""
    worker = getattr(processor, "_batch_processor", None)
    with contextlib.suppress(Exception):
        worker._shutdown = True
        worker._worker_awaken.set()
        worker._worker_thread.join(1.0)


def flush() -> None:
    """Export what this process's spans have waited for (a child's, after
    each job and at its end)."""
    for buffer in _buffers:
        try:
            buffer.flush()
        except Exception:  # an exporter's failure is no job's
            import logging

            logging.getLogger("django_jobs.worker").exception("exporting spans failed")
