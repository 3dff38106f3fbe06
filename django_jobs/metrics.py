"""The queues as Prometheus / OpenMetrics metrics: what ``jobs stats`` counts.

A scrape reads the database the same few times, whatever the number of jobs
and queues: the counts behind the dashboard and ``jobs stats``
(``stats.queue_counts``: on PostgreSQL a capped count of each state first,
and past the cap the estimates' bounded reads), the worker rows (summed up
as ``stats.worker_summaries`` does, and each live worker's size: current,
min and max children, and the connections it may hold), the workflows
counted by backend and state (``workflow_counts``) and the usage of the
latest done and buried jobs (two bounded reads: ``usage_metrics``).

The backlog an external autoscaler scales on is
``django_jobs_queue_jobs{state="ready"}`` (and how long the oldest has
waited, ``django_jobs_queue_oldest_ready_age_seconds``): see
docs/deploying.rst.

Nothing is kept between scrapes, so every web process answers the same and
a restart loses nothing.

Past 10,000 jobs in a state (``counting.CAP``), the counts of that state are
estimates on PostgreSQL (``live_counts``): the same gauges, rounded to two
significant digits, and ``django_jobs_queue_counts_estimated{count=...}``
says which (1) are. Alert rules and autoscalers can use them as they are:
an estimate is within a few per cent of a backlog that size in total, 10 to
20 per cent per queue.

Done and failed jobs are gauges over the last hour, not counters: the job
table is pruned, so no count of it only ever grows. Workflows are gauges
too: retrying a failed workflow's steps makes it run again, so the count of
failed ones can go down. Queues named in TASKS and backends without workers
or workflows are reported with zeros, so that alert rules find a series to
compare instead of an absent one.

``prometheus-client`` is an optional dependency (the ``metrics`` extra of
``django-jobs-queue``), imported when a scrape comes, never when the app
loads.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Q
from django.utils import timezone

from . import stats
from .models import Worker, Workflow
from .usage_metrics import usage_families

if TYPE_CHECKING:
    from prometheus_client.core import Metric

#: The per-queue counts exported with a ``state`` label.
STATES = ("waiting", "ready", "delayed", "reserved", "buried")

#: The counts that may be estimates, as ``django_jobs_queue_counts_estimated``
#: names them: the states above, the last hour's, and the oldest ready job.
ESTIMABLE = (*STATES, "done_last_hour", "failed_last_hour", "oldest_ready")

#: How ``queue.workflows.missed_deadlines`` starts the reason of a workflow
#: it fails.
MISSED = "missed its deadline"


def client():
    """The ``prometheus_client`` module, or a clear error without it."""
    try:
        import prometheus_client
    except ImportError:
        raise ImproperlyConfigured(
            "The django-jobs metrics endpoint needs the prometheus-client "
            "package: pip install prometheus-client (the 'metrics' extra of "
            "django-jobs-queue installs it)."
        ) from None
    return prometheus_client


def families(now: datetime | None = None) -> list[Metric]:
    """Every metric family of one scrape (five queries; six on PostgreSQL)."""
    from prometheus_client.core import GaugeMetricFamily

    now = now or timezone.now()
    counts = stats.queue_counts(now)
    keys = sorted(set(counts) | stats.configured_queues())
    jobs = GaugeMetricFamily(
        "django_jobs_queue_jobs",
        "Jobs waiting for their upstream jobs, ready, delayed, running and "
        "buried, per queue.",
        labels=["backend", "queue", "state"],
    )
    oldest = GaugeMetricFamily(
        "django_jobs_queue_oldest_ready_age",
        "How long the oldest ready job of the queue has been due (0: none ready).",
        labels=["backend", "queue"],
        unit="seconds",
    )
    done = GaugeMetricFamily(
        "django_jobs_queue_done_last_hour",
        "Jobs of the queue that finished successfully in the last hour.",
        labels=["backend", "queue"],
    )
    failed = GaugeMetricFamily(
        "django_jobs_queue_failed_last_hour",
        "Jobs of the queue buried (failed for good) in the last hour.",
        labels=["backend", "queue"],
    )
    estimated = GaugeMetricFamily(
        "django_jobs_queue_counts_estimated",
        "1 when the queue gauges of this count are estimates (more jobs than"
        " django-jobs counts exactly are in that state), 0 when exact.",
        labels=["count"],
    )
    for name in ESTIMABLE:
        estimated.add_metric([name], int(name in counts.estimated))
    for key in keys:
        row = counts.get(key, {})
        for state in STATES:
            jobs.add_metric([*key, state], row.get(state, 0))
        since = row.get("oldest_ready")
        oldest.add_metric(list(key), 0 if since is None else seconds(now - since))
        done.add_metric(list(key), row.get("done_last_hour", 0))
        failed.add_metric(list(key), row.get("failed_last_hour", 0))
    return [
        jobs, oldest, done, failed, estimated, *worker_families(now),
        *workflow_families(),
        *usage_families(now),
    ]  # fmt: skip


def worker_families(now: datetime) -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    rows = list(Worker.objects.order_by("hostname", "pid"))
    summaries = stats.summarise_workers(rows, now)
    for alias in stats.backend_aliases():
        summaries.setdefault(alias, dict.fromkeys(stats.WORKER_COUNTS, 0))
    workers = GaugeMetricFamily(
        "django_jobs_workers",
        "Workers by heartbeat: live, or stale (silent past WORKER_TIMEOUT).",
        labels=["backend", "status"],
    )
    slots = GaugeMetricFamily(
        "django_jobs_worker_slots",
        "Jobs the live workers may run at once (their concurrency, added up).",
        labels=["backend"],
    )
    busy = GaugeMetricFamily(
        "django_jobs_worker_busy_slots",
        "Jobs the live workers hold now.",
        labels=["backend"],
    )
    for alias, summary in sorted(summaries.items()):
        workers.add_metric([alias, "live"], summary["live"])
        workers.add_metric([alias, "stale"], summary["stale"])
        slots.add_metric([alias], summary["capacity"])
        busy.add_metric([alias], summary["busy"])
    yield from (workers, slots, busy)
    yield from size_families([row for row in rows if not stats.is_stale(row, now)])


#: Per live worker: its name, what it says, and the row's field.
SIZES = (
    (
        "children",
        "Child slots of the worker now (jobs it may run at once).",
        "concurrency",
    ),
    (
        "children_min",
        "The fewest children it keeps (MIN of MIN:MAX).",
        "min_concurrency",
    ),
    (
        "children_max",
        "The most children it may grow to (MAX of MIN:MAX).",
        "max_concurrency",
    ),
    ("connections", "Database connections it may hold at its size.", "connections"),
)


def size_families(live: list[Worker]) -> Iterator[Metric]:
    """Each live worker's size; a row older than these columns is fixed."""
    from prometheus_client.core import GaugeMetricFamily

    for name, documentation, field in SIZES:
        family = GaugeMetricFamily(
            f"django_jobs_worker_{name}",
            documentation,
            labels=["backend", "worker", "host"],
        )
        for row in live:
            value = size_of(row, field)
            if value is not None:
                family.add_metric([row.backend, row.pk, row.hostname], value)
        yield family


def size_of(row: Worker, field: str) -> int | None:
    """A row older than the range has none: its size was fixed."""
    value = getattr(row, field)
    if value is None and field.endswith("concurrency"):
        return row.concurrency
    return value


def workflow_counts() -> dict[tuple[str, str], dict[str, int]]:
    """Per (backend, state): how many workflows, and how many of the failed
    ones missed their deadline; one grouped query over the workflow table."""
    rows = (
        Workflow.objects.order_by()
        .values("backend", "state")
        .annotate(
            n=Count("pk"),
            missed=Count(
                "pk",
                filter=Q(state=Workflow.Status.FAILED, reason__startswith=MISSED),
            ),
        )
    )
    return {(row["backend"], row["state"]): row for row in rows}


def workflow_families() -> Iterator[Metric]:
    from prometheus_client.core import GaugeMetricFamily

    counts = workflow_counts()
    aliases = sorted({backend for backend, _ in counts} | set(stats.backend_aliases()))
    workflows = GaugeMetricFamily(
        "django_jobs_workflows",
        "Workflows running now, and those that succeeded, failed or were cancelled.",
        labels=["backend", "state"],
    )
    missed = GaugeMetricFamily(
        "django_jobs_workflows_missed_deadline",
        "Failed workflows that missed their deadline.",
        labels=["backend"],
    )
    for alias in aliases:
        for state in Workflow.Status.values:
            workflows.add_metric(
                [alias, state], counts.get((alias, state), {}).get("n", 0)
            )
        failed = counts.get((alias, Workflow.Status.FAILED), {})
        missed.add_metric([alias], failed.get("missed", 0))
    yield from (workflows, missed)


def seconds(delta) -> float:
    return max(0.0, round(delta.total_seconds(), 3))


class Collector:
    """A ``prometheus_client`` collector that reads the queues when scraped."""

    def collect(self) -> Iterator[Metric]:
        yield from families()


def exposition(accept: str = "") -> tuple[bytes, str]:
    """The metrics in the format the scraper's Accept header asks for
    (OpenMetrics or Prometheus text), and its content type."""
    prometheus_client = client()
    from prometheus_client.exposition import choose_encoder

    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type
