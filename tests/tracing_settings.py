"""The test settings with OpenTelemetry's SDK exporting every span to a file
(``OTEL_TEST_SPANS``, one JSON object a line), through a BatchSpanProcessor
as a project would set it up, and the hooks of ``HOOKS_UNDER_TEST`` (dotted
paths, comma-separated) after the tracing. ``TRACING_UNDER_TEST``: the
TRACING option ("child" unless said)."""

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)

from tests.settings import *  # noqa: F403
from tests.settings import TASKS


def _spans_file():
    # Appended to by every process of the worker, one write per export.
    return open(os.environ["OTEL_TEST_SPANS"], "a", buffering=1)


if os.environ.get("OTEL_TEST_SPANS"):
    exporter = ConsoleSpanExporter(
        out=_spans_file(), formatter=lambda span: span.to_json(indent=None) + "\n"
    )
    simple = os.environ.get("OTEL_TEST_PROCESSOR") == "simple"
    processor = (
        SimpleSpanProcessor(exporter) if simple else BatchSpanProcessor(exporter)
    )
    service = os.environ.get("OTEL_TEST_SERVICE", "worker")
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)

_default = TASKS["default"]
_hooks = [path for path in os.environ.get("HOOKS_UNDER_TEST", "").split(",") if path]
TASKS = {
    **TASKS,
    "default": {
        **_default,
        "OPTIONS": {
            **_default["OPTIONS"],
            "HOOKS": _hooks,
            "HOOK_TIMEOUT": 1,
            "TRACING": os.environ.get("TRACING_UNDER_TEST", "child"),
        },
    },
}
