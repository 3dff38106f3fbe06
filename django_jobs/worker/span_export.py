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
is: it holds no thread.

A lane child (lane.py) is long-lived and its jobs end many a second: an
export per job would cost the lane its throughput, and one at its end would
keep every span until then. It exports from a thread of its own instead
(``LaneExport``): every ``LANE_INTERVAL`` seconds, or as soon as
``LANE_BATCH`` spans wait, and once more when the lane ends (and, as in any
child, before ``os._exit``), so its event loop never waits on an exporter.
docs/observability.rst gives each way's cost per job, measured by
bench/tracing.py.

Nothing here imports OpenTelemetry: without its SDK loaded, each function
returns at once.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import sys
import threading
from typing import Any

SDK = "opentelemetry.sdk.trace"
logger = logging.getLogger("django_jobs.worker")

#: A lane child's exports: at least this often (seconds), or as soon as this
#: many spans wait.
LANE_INTERVAL = 0.5
LANE_BATCH = 512

#: This process's JobEndProcessors (made in the zygote, inherited by children).
_buffers: list[JobEndProcessor] = []


class JobEndProcessor:
    """A span processor that exports a child's ended spans when told to."""

    def __init__(self, exporter: Any) -> None:
        self.exporter = exporter
        self.spans: list[Any] = []
        # Spans end in the lane's loop while its thread exports (reentrant:
        # a flush before os._exit may come from a signal handler).
        self.taking = threading.RLock()
        self.exporting = threading.Lock()  # one export at a time
        #: Set when LANE_BATCH spans wait (a lane's exporting thread).
        self.full: threading.Event | None = None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.context.trace_flags.sampled:
            with self.taking:
                self.spans.append(span)
                waiting = len(self.spans)
            if self.full is not None and waiting >= LANE_BATCH:
                self.full.set()

    def flush(self) -> None:
        with self.exporting:
            with self.taking:
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
            logger.exception("exporting spans failed")


class LaneExport:
    """A lane child's exports, from a thread of its own (none without an
    SDK's JobEndProcessor): its event loop never waits on an exporter."""

    def __init__(self) -> None:
        self.wake = threading.Event()
        self.stopping = False
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if not _buffers:
            return
        for buffer in _buffers:
            buffer.full = self.wake
        self.thread = threading.Thread(
            target=self.serve, name="django_jobs span export", daemon=True
        )
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping:
            self.wake.wait(LANE_INTERVAL)
            self.wake.clear()
            flush()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread, then export what is left (the lane ends)."""
        if self.thread is not None:
            self.stopping = True
            self.wake.set()
            self.thread.join(timeout)
            for buffer in _buffers:
                buffer.full = None
        flush()
