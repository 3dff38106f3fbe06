"""The zygote's batch processors start no thread in its children, even when
the project keeps its own reference to one (a settings module's variable):
the SDK's fork hook would start one in every child, 2 ms each; and each
child's spans name its own instance, the resource detected without a pool
of threads."""

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
    parent_instance = provider.resource.attributes.get("service.instance.id")
    assert parent_instance
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        with trace.get_tracer("t").start_as_current_span("run"):
            pass
        span_export.flush()
        names = [t.name for t in threading.enumerate()]
        worker = kept._batch_processor
        reinit = getattr(worker, "_pid", None) == os.getpid()  # the fork hook ran
        spans = exporter.get_finished_spans()
        key = "service.instance.id"  # detected anew in each process
        own = spans[0].resource.attributes.get(key) != parent_instance
        os.write(write, f"{names} {len(spans)} {reinit} {own}".encode())
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
    # No thread, the span exported, no fork hook of the batch worker, and the
    # span names the child's own instance (the provider's resource, detected
    # anew in the child, without a pool of threads).
    assert done.stdout.strip() == "['MainThread'] 1 False True", (
        done.stdout + done.stderr
    )
