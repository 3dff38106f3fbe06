"""Histograms per task of what attempts used: peak memory and CPU seconds.

Read from the ``usage`` of the jobs that finished most recently: at most
``SAMPLE`` done and ``SAMPLE`` buried jobs of the last hour, newest first,
one query each that walks the (state, finished_at) index backwards and
stops there, so a scrape costs the same on a table of millions. Every
attempt of those jobs counts (a buried job's failed attempts too). Like the
other "last hour" metrics they are gauges (OpenMetrics gauge histograms):
the table is pruned, so no count of it only ever grows. Jobs still waiting
for a retry are not counted until they finish.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .models import Job
from .states import State

if TYPE_CHECKING:
    from prometheus_client.core import Metric

#: Jobs read per state and scrape.
SAMPLE = 500
WINDOW = timedelta(hours=1)
MEMORY_BUCKETS = [2**n * 2**20 for n in range(4, 14)]  # 16 MiB .. 8 GiB
CPU_BUCKETS = [0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0]


def recent_usage(now: datetime) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Usage entries of recently finished jobs, by (backend, task)."""
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for state in (State.DONE, State.BURIED):
        rows = (
            Job.objects.filter(state=state, finished_at__gte=now - WINDOW)
            .order_by("-finished_at")
            .values_list("backend", "task_path", "usage")[:SAMPLE]
        )
        for backend, task_path, usage in rows:
            if isinstance(usage, list):
                entries = [used for used in usage if isinstance(used, dict)]
                found.setdefault((backend, task_path), []).extend(entries)
    return found


def usage_families(now: datetime) -> Iterator[Metric]:
    from prometheus_client.core import GaugeHistogramMetricFamily

    memory = GaugeHistogramMetricFamily(
        "django_jobs_task_peak_memory_bytes",
        "Peak resident memory of each attempt of the task's jobs that finished "
        "lately (the latest of the last hour).",
        labels=["backend", "task"],
    )
    cpu = GaugeHistogramMetricFamily(
        "django_jobs_task_cpu_seconds",
        "CPU seconds of each attempt of the task's jobs that finished lately.",
        labels=["backend", "task"],
    )
    for key, entries in sorted(recent_usage(now).items()):
        for family, field, bounds in (
            (memory, "max_rss", MEMORY_BUCKETS),
            (cpu, "cpu", CPU_BUCKETS),
        ):
            values = [
                used[field]
                for used in entries
                if isinstance(used.get(field), int | float)
            ]
            family.add_metric(list(key), *buckets(values, bounds))
    yield from (memory, cpu)


def buckets(values: list[float], bounds: list[float]) -> tuple[list, float]:
    """Cumulative (bound, count) pairs ending with +Inf, and the sum."""
    pairs = [(_bound(bound), sum(1 for v in values if v <= bound)) for bound in bounds]
    pairs.append(("+Inf", len(values)))
    return pairs, float(sum(values))


def _bound(bound: float) -> str:
    return str(int(bound)) if float(bound).is_integer() and bound >= 1 else str(bound)
