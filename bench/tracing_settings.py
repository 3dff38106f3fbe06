"""bench/settings.py with tracing as bench/tracing.py asks (BENCH_TRACING):

- ``off``: TRACING "off" (what a project without OpenTelemetry runs);
- ``nosdk``: TRACING "child", opentelemetry-api installed, no SDK set up;
- ``job``: the SDK with a BatchSpanProcessor exporting to a file, as a
  project sets it up (the zygote swaps it for its JobEndProcessor);
- ``simple``: the SDK with a SimpleSpanProcessor exporting to the same file.
"""

import os

from bench.settings import *  # noqa: F403
from bench.settings import TASKS

MODE = os.environ.get("BENCH_TRACING", "off")

if MODE in ("job", "simple"):
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    _out = open(os.environ.get("BENCH_SPANS", "/tmp/bench_spans.jsonl"), "a")  # noqa: SIM115
    _exporter = ConsoleSpanExporter(
        out=_out, formatter=lambda span: span.to_json(indent=None) + "\n"
    )
    _processor = (SimpleSpanProcessor if MODE == "simple" else BatchSpanProcessor)(
        _exporter
    )
    _provider = TracerProvider()
    _provider.add_span_processor(_processor)
    trace.set_tracer_provider(_provider)

TASKS = {
    **TASKS,
    "default": {
        **TASKS["default"],
        "OPTIONS": {
            **TASKS["default"]["OPTIONS"],
            "TRACING": "off" if MODE == "off" else "child",
        },
    },
}
