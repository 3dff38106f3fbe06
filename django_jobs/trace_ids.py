"""Trace and span ids for log lines, read without importing OpenTelemetry.

A log line about a job carries the ids of its run's span (the traceparent
its child reported) or, before it ran, of its enqueue (the traceparent kept
on the row). Any other line carries the current span's, when
``opentelemetry`` was imported by someone (a configured SDK, our tracing
hook): a project without it pays one dictionary lookup.
"""

from __future__ import annotations

import sys
from typing import Any

#: "00-<32 hex trace id>-<16 hex span id>-<2 hex flags>"
TRACEPARENT_LENGTH = 55


def from_traceparent(value: Any) -> dict[str, str]:
    """``{"trace_id", "span_id"}`` of a W3C traceparent; {} if it is not one."""
    if not isinstance(value, str) or len(value) != TRACEPARENT_LENGTH:
        return {}
    _, trace_id, span_id, _ = value.split("-", 3)
    if len(trace_id) != 32 or len(span_id) != 16 or trace_id == "0" * 32:
        return {}
    return {"trace_id": trace_id, "span_id": span_id}


def of_job(job: Any) -> dict[str, str]:
    """The ids a line about ``job`` carries: its run's, else its enqueue's."""
    run = getattr(job, "run_traceparent", None)
    if run:
        return from_traceparent(run)
    context = getattr(job, "trace_context", None)
    if isinstance(context, dict):
        return from_traceparent(context.get("traceparent"))
    return {}


def current() -> dict[str, str]:
    """The current span's ids, if OpenTelemetry is loaded and one is valid."""
    trace = sys.modules.get("opentelemetry.trace")
    if trace is None:
        return {}
    try:
        context = trace.get_current_span().get_span_context()
    except Exception:
        return {}
    if not context.is_valid:
        return {}
    return {
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
    }
