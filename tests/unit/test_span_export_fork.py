"""The zygote's batch processors start no thread in its children, even when
the project keeps its own reference to one (a settings module's variable):
the SDK's fork hook would start one in every child, 2 ms each."""

import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("opentelemetry.sdk")

SCRIPT = textwrap.dedent(
    """
    import os, threading
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )
    from django_jobs.worker import span_export

    exporter = InMemorySpanExporter()
    kept = BatchSpanProcessor(exporter)  # the project's own reference
    provider = TracerProvider()
    provider.add_span_processor(kept)
    trace.set_tracer_provider(provider)
    span_export.prepare_fork_server()
    assert kept.span_exporter is exporter
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        with trace.get_tracer("t").start_as_current_span("run"):
            pass
        span_export.flush()
        names = [t.name for t in threading.enumerate()]
        worker = kept._batch_processor
        reinit = getattr(worker, "_pid", None) == os.getpid()  # the fork hook ran
        spans = len(exporter.get_finished_spans())
        os.write(write, f"{names} {spans} {reinit}".encode())
        os._exit(0)
    os.waitpid(pid, 0)
    print(os.read(read, 1000).decode())
    kept.shutdown()  # the project's own call, at its exit: harmless
    """
)


def test_a_child_starts_no_batch_thread_and_exports_its_span():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['MainThread'] 1 False", done.stdout + done.stderr
