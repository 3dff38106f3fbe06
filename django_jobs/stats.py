"""The numbers behind the dashboard and ``jobs stats``.

Per queue: ready, delayed, reserved and buried jobs, the jobs done and
failed in the last hour, and the oldest ready job (``live_counts``: exact
while a count holds at most ``counting.CAP`` jobs, estimated past it, and
each row says which of its numbers are estimates). Their cost follows the
work in hand, capped, not the history kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.db.models.functions import TruncMinute
from django.utils import timezone
from django.utils.translation import gettext as _

from . import counting
from .backend import JobsBackend
from .compat import InvalidTaskBackend, task_backends
from .conf import JobsOptions
from .live_counts import queue_counts
from .models import Batch, Job, Queue, Worker
from .queue import configured_queues as queues_of
from .queue.claim import LIMITED
from .rates import describe_rate
from .states import DELAYED, TASK_STATUS, UNFINISHED, State

COUNTS = ("waiting", "ready", "delayed", "reserved", "buried", "done_last_hour")
COUNTS += ("failed_last_hour",)


@dataclass
class QueueRow:
    backend: str
    name: str
    waiting: int = 0
    ready: int = 0
    delayed: int = 0
    reserved: int = 0
    buried: int = 0
    done_last_hour: int = 0
    failed_last_hour: int = 0
    oldest_ready: datetime | None = None
    paused: bool = False
    paused_at: datetime | None = None
    max_concurrency: int | None = None
    rate_limit: float | None = None
    key_concurrency: int | None = None
    #: The rate per key as people write it ("1000/hour"), "" for none.
    key_rate: str = ""
    #: The names of the numbers above that are estimates (``live_counts``).
    estimated: frozenset[str] = frozenset()


#: Every state a job can show, in the order of its life.
DISPLAY_STATES = (
    State.WAITING, State.READY, DELAYED, State.RESERVED, State.DONE, State.BURIED
)  # fmt: skip
#: A state's django.tasks name means it too: --state failed is buried.
STATE_ALIASES = {
    status.lower(): state
    for state, status in TASK_STATUS.items()
    if status.lower() not in State.values
}


def in_state(jobs, state: str | None, now: datetime | None = None):
    """The jobs of ``jobs`` that show ``state`` (or an alias of it; None: all).

    Ready and delayed split on ``run_at``, as people count them.
    """
    state = STATE_ALIASES.get(state, state)
    if state == State.READY:
        return jobs.ready(now)
    if state == DELAYED:
        return jobs.delayed(now)
    if state in (State.WAITING, State.RESERVED, State.DONE, State.BURIED):
        return jobs.filter(state=state)
    return jobs


def backend_aliases() -> list[str]:
    """The TASKS aliases of every django_jobs backend."""
    return [each.alias for each in task_backends.all() if isinstance(each, JobsBackend)]


def configured_queues(backend: str | None = None) -> set[tuple[str, str]]:
    """The queue names that TASKS gives each django_jobs backend."""
    return {
        (each.alias, name)
        for each in task_backends.all()
        if isinstance(each, JobsBackend) and backend in (None, each.alias)
        for name in queues_of(each.alias)
    }


def queue_flags(backend: str | None = None):
    """The queue rows worth a line: paused or limited. A row left behind by
    a resume (or by a pause of a mistyped name, before pause refused those)
    says nothing, and a queue with nothing else to show is not listed."""
    flags = Queue.objects.filter(Q(paused=True) | LIMITED)
    return flags if backend is None else flags.filter(backend=backend)


def queue_rows(now: datetime, backend: str | None = None) -> list[QueueRow]:
    """Every queue that is configured, paused, or has jobs worth counting
    (of every backend, or of ``backend``)."""
    counts = queue_counts(now, backend)
    flags = {(q.backend, q.name): q for q in queue_flags(backend)}
    keys = sorted(set(counts) | set(flags) | configured_queues(backend))
    rows = []
    for backend, name in keys:
        row = QueueRow(backend, name, **counts.get((backend, name), {}))
        row.estimated = counts.estimated
        if flag := flags.get((backend, name)):
            row.paused, row.paused_at = flag.paused, flag.paused_at
            row.max_concurrency, row.rate_limit = flag.max_concurrency, flag.rate_limit
            row.key_concurrency = flag.key_concurrency
            row.key_rate = describe_rate(flag.key_rate_limit, flag.key_rate_period)
        rows.append(row)
    return rows


def totals(rows: list[QueueRow]) -> dict[str, int]:
    return {name: sum(getattr(row, name) for row in rows) for name in COUNTS}


def finished_per_minute(now: datetime) -> list[tuple[datetime, int, int]]:
    """(minute, done, failed) for each of the last 60 minutes, oldest first."""
    last = now.replace(second=0, microsecond=0)
    first = last - timedelta(minutes=59)
    # One grouped count per state, joined: ``state IN (...)`` made the
    # planner walk the whole (state, finished_at) index of the hot table.
    done, buried = (
        Job.objects.filter(state=state, finished_at__gte=first)
        .order_by()
        .annotate(minute=TruncMinute("finished_at"))
        .values("minute", "state")
        .annotate(n=Count("pk"))
        for state in (State.DONE, State.BURIED)
    )
    rows = done.union(buried, all=True)
    counts = {(row["minute"], row["state"]): row["n"] for row in rows}
    minutes = [first + timedelta(minutes=i) for i in range(60)]
    return [
        (m, counts.get((m, State.DONE), 0), counts.get((m, State.BURIED), 0))
        for m in minutes
    ]


def worker_timeout(backend: str) -> float:
    """WORKER_TIMEOUT of a backend: after it, a silent worker is presumed dead."""
    try:
        config = task_backends[backend].config
    except (InvalidTaskBackend, AttributeError):  # unknown, or not ours
        config = JobsOptions()
    return config.WORKER_TIMEOUT


def is_stale(worker: Worker, now: datetime | None = None) -> bool:
    silence = (now or timezone.now()) - worker.last_heartbeat
    return silence.total_seconds() > worker_timeout(worker.backend)


def stray_backends(using: str | None = None) -> dict[str, int]:
    """Ready jobs per backend alias that is not in TASKS: no worker will ever
    run them (a typo in ``@task(backend=...)``, a backend renamed). One
    grouped query over the ready jobs."""
    jobs = Job.objects.using(using) if using else Job.objects
    return dict(
        jobs.filter(state=State.READY)
        .exclude(backend__in=list(settings.TASKS))
        .values_list("backend")
        .annotate(jobs=Count("pk"))
        .order_by()
    )


def unknown_aliases(rows: list[QueueRow]) -> dict[str, int]:
    """``stray_backends`` from the rows already counted (no query)."""
    found: dict[str, int] = {}
    for row in rows:
        if row.backend not in settings.TASKS and row.ready + row.delayed:
            found[row.backend] = found.get(row.backend, 0) + row.ready + row.delayed
    return found


def backend_stats(
    backend: str = "default", *, queues: list[str] | None = None
) -> dict[str, Any]:
    """What ``jobs stats --json`` prints: per queue, in total, and workers.

    A stable document: keys are only ever added. ``estimated`` lists the
    counts (and "oldest_ready") that are estimates because more than
    ``exact_up_to`` jobs are in that state (see ``live_counts``).
    """
    now = timezone.now()
    every = queue_rows(now)  # every backend's: the unknown ones are warned of
    rows = [
        row
        for row in every
        if row.backend == backend and (not queues or row.name in queues)
    ]
    estimated = sorted(every[0].estimated) if every else []

    def age(oldest: datetime | None) -> float | None:
        return None if oldest is None else round((now - oldest).total_seconds(), 3)

    queue_reports = []
    for row in rows:
        queue_reports.append(
            {
                "name": row.name,
                "paused": row.paused,
                **{name: getattr(row, name) for name in COUNTS},
                "oldest_ready_seconds": age(row.oldest_ready),
                "max_concurrency": row.max_concurrency,
                "rate_limit": row.rate_limit,
                "key_concurrency": row.key_concurrency,
                "key_rate_limit": row.key_rate or None,
                "estimated": estimated,
            }
        )
    oldest = [row.oldest_ready for row in rows if row.oldest_ready is not None]
    return {
        "backend": backend,
        "at": now.isoformat(),
        "queues": queue_reports,
        "total": {
            **totals(rows),
            "oldest_ready_seconds": age(min(oldest, default=None)),
            "estimated": estimated,
        },
        "exact_up_to": counting.cap(),
        "workers": worker_capacity(now, backend),
        "unknown_backends": unknown_aliases(every),
    }


WORKER_COUNTS = ("live", "stale", "capacity", "busy")


def worker_summaries(
    now: datetime, backend: str | None = None
) -> dict[str, dict[str, int]]:
    """Per backend (or of ``backend`` only), from one query: live and stale
    workers, and the live ones' slots and jobs in hand."""
    workers = Worker.objects.only(
        "backend", "last_heartbeat", "concurrency", "jobs_in_hand"
    )
    if backend is not None:
        workers = workers.filter(backend=backend)
    return summarise_workers(workers, now)


def summarise_workers(
    workers: Iterable[Worker], now: datetime
) -> dict[str, dict[str, int]]:
    """``worker_summaries`` of rows already read (the metrics read them once
    for the summaries and the gauges per worker)."""
    summaries: dict[str, dict[str, int]] = {}
    for worker in workers:
        summary = summaries.setdefault(worker.backend, dict.fromkeys(WORKER_COUNTS, 0))
        if is_stale(worker, now):
            summary["stale"] += 1
            continue
        summary["live"] += 1
        summary["capacity"] += worker.concurrency
        summary["busy"] += worker.jobs_in_hand
    return summaries


def worker_capacity(now: datetime, backend: str | None = None) -> dict[str, int]:
    """``worker_summaries`` added up over the backends."""
    total = dict.fromkeys(WORKER_COUNTS, 0)
    for summary in worker_summaries(now, backend).values():
        for name in WORKER_COUNTS:
            total[name] += summary[name]
    return total


#: What a batch's progress is made of, counted with the batch in one query.
BATCH_COUNTS = {
    "job_count": Count("jobs"),
    "done": Count("jobs", filter=Q(jobs__state=State.DONE)),
    "waiting": Count("jobs", filter=Q(jobs__state__in=UNFINISHED)),
}


def batch_summary(batch: Batch) -> dict[str, int]:
    """How far a batch (annotated with ``BATCH_COUNTS``) has got."""
    finished = batch.job_count - batch.waiting
    return {
        "jobs": batch.job_count,
        "finished": finished,
        "done": batch.done,
        "failed": finished - batch.done,
    }


def describe_batch(summary: dict[str, int]) -> str:
    """'7 of 10 finished (6 done, 1 failed)'."""
    return (
        _("%(finished)d of %(jobs)d finished (%(done)d done, %(failed)d failed)")
        % summary
    )
