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
keep every span until then. It exports in batches on its event loop
(``LoopExport``): ``LANE_INTERVAL`` seconds after a span starts waiting, as
soon as ``LANE_BATCH`` spans wait, when it goes idle, and once more when the
lane ends (and, as in any child, before ``os._exit``).
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
from collections.abc import Callable
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
        #: Told how many spans wait, after each one (a lane's export).
        self.waiting: Callable[[int], None] | None = None

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.context.trace_flags.sampled:
            with self.taking:
                self.spans.append(span)
                waiting = len(self.spans)
            if self.waiting is not None:
                self.waiting(waiting)

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
    exporter = None
    for processor in processors:
        if isinstance(processor, batch):
            exporter = processor.span_exporter
            _stop_thread(processor)
            processor = JobEndProcessor(exporter)
            _buffers.append(processor)
        kept.append(processor)
    multi._span_processors = tuple(kept)
    del processors, processor, kept, exporter
    _process_resource_in_turn()
    gc.collect()  # the batch processors go, and with them their fork hooks


def _stop_thread(processor: Any) -> None:
    """Stop the thread the fork started in this process, and let its worker
    go (private SDK state, read carefully: an SDK that changed it keeps its
    thread instead).

    The worker registered a fork hook (``os.register_at_fork``) that starts
    a new thread in every child, through a weak reference: a project that
    keeps its own reference to the batch processor (a settings module's
    variable) would keep the worker alive, and every child would start a
    thread it never uses (2 ms a child here). The processor keeps a stand-in
    that does nothing, and the worker, collected, starts no thread again."""
    worker = getattr(processor, "_batch_processor", None)
    with contextlib.suppress(Exception):
        worker._shutdown = True
        worker._worker_awaken.set()
        worker._worker_thread.join(1.0)
        if not worker._worker_thread.is_alive():
            processor._batch_processor = _SetAside(worker._exporter)


def _process_resource_in_turn() -> None:
    """The tracer provider's fork hook gives each child's spans a resource of
    its own (``service.instance.id``, and ``process.pid`` where configured):
    it runs the process's resource detectors in a pool of threads, made and
    joined in every child, about 1 ms of a one-process-per-job child here.
    In the zygote (and so in its children) they run in turn instead, for
    the same resource (private SDK names, read carefully: an
    SDK without them keeps its own way)."""
    trace_module = sys.modules[SDK]
    resources = sys.modules.get("opentelemetry.sdk.resources")
    build = getattr(resources, "_build_resource_detectors", None)
    if build is None or not hasattr(trace_module, "_get_process_dependent_resource"):
        return

    def in_turn() -> Any:
        resource = resources.Resource.get_empty()
        for detector in build():
            if detector.is_process_dependent():
                try:
                    resource = resource.merge(detector.detect())
                except Exception as exc:  # as the SDK's own: logged, skipped
                    logger.warning("resource detector %r failed: %s", detector, exc)
        return resource

    trace_module._get_process_dependent_resource = in_turn


class _SetAside:
    """What a batch processor put aside in the zygote holds instead of its
    worker: its spans go to the JobEndProcessor that took its exporter."""

    def __init__(self, exporter: Any) -> None:
        self._exporter = exporter  # what the processor's span_exporter reads

    def emit(self, *args: Any, **kwargs: Any) -> None:
        pass

    def force_flush(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        pass


def flush() -> None:
    """Export what this process's spans have waited for (a child's, after
    each job and at its end)."""
    for buffer in _buffers:
        try:
            buffer.flush()
        except Exception:  # an exporter's failure is no job's
            logger.exception("exporting spans failed")


class LoopExport:
    """A lane child's exports, on its own event loop, in batches: once
    ``LANE_BATCH`` spans wait, ``LANE_INTERVAL`` seconds after the first of
    them, when the lane goes idle (lane.py) and when it ends (``stop``).

    No thread: the exporter's work (its JSON, say) holds the GIL wherever it
    runs, and a thread of its own only added switches between it and the
    loop (bench/tracing.py --lane: docs/observability.rst)."""

    def __init__(self, loop: Any) -> None:
        self.loop = loop
        self.owner = threading.get_ident()
        self.due: Any = None  # the timer or the call that will export
        self.full = False  # ``due`` is the call at once (the batch is full)

    def start(self) -> None:
        for buffer in _buffers:
            buffer.waiting = self.count

    def count(self, waiting: int) -> None:
        """After each span: export soon if the batch is full, else by the
        timer that the first waiting span set."""
        full = waiting >= LANE_BATCH
        if self.due is not None and (self.full or not full):
            return
        if threading.get_ident() != self.owner:  # a span ended in a thread
            with contextlib.suppress(RuntimeError):  # the loop closed: stop()
                self.loop.call_soon_threadsafe(self.count, waiting)
        elif full:
            self.cancel()
            self.due, self.full = self.loop.call_soon(self.export), True
        else:
            self.due = self.loop.call_later(LANE_INTERVAL, self.export)

    def export(self) -> None:
        self.due, self.full = None, False
        flush()

    def cancel(self) -> None:
        if self.due is not None:
            self.due.cancel()
            self.due, self.full = None, False

    def stop(self) -> None:
        """Export what is left (the lane ends)."""
        self.cancel()
        for buffer in _buffers:
            buffer.waiting = None
        flush()
