"""The counts per queue behind the dashboard, ``jobs stats`` and the metrics.

Per (backend, queue): the jobs waiting, ready, delayed, reserved and
buried, those done and failed in the last hour, and the oldest ready job.

On PostgreSQL, one query first counts each of them over every queue, up to
``counting.CAP`` rows each (10,000), each through its own index. The counts
at most at the cap are then counted per queue exactly, by one grouped query
that reads only their rows (so at most a few tens of thousands); those past
it are estimated (``estimates``) and named in ``QueueCounts.estimated``, so
that every reader can say so. Other databases always count exactly: SQLite
is for sites whose tables are small, and its count reads rows in
microseconds.
"""

from __future__ import annotations

import operator
from datetime import datetime, timedelta
from functools import reduce

from django.db import connections
from django.db.models import Count, DateTimeField, Min, Q, QuerySet, Value

from . import counting, estimates
from .models import Job
from .states import State

HOUR = timedelta(hours=1)
NOW = DateTimeField()
#: Counts read from the hot table alone (a sample of it, past the cap).
LIVE = ("waiting", "ready", "delayed", "reserved", "buried")
#: Counts of the last hour (extrapolated from the latest, past the cap).
RECENT = ("done_last_hour", "failed_last_hour")


def buckets(now: datetime) -> dict[str, Q]:
    """The jobs each count counts: the one place that says what they mean."""
    recent = Q(finished_at__gte=now - HOUR)
    return {
        "waiting": Q(state=State.WAITING),
        "ready": Q(state=State.READY, run_at__lte=now),
        "delayed": Q(state=State.READY, run_at__gt=now),
        "reserved": Q(state=State.RESERVED),
        "buried": Q(state=State.BURIED),
        "done_last_hour": Q(state=State.DONE) & recent,
        "failed_last_hour": Q(state=State.BURIED) & recent,
    }


class QueueCounts(dict):
    """Counts per (backend, queue), each a dict of counts by name.

    ``estimated``: the names of the counts that are estimates, for every
    queue ("oldest_ready" too, when any queue's is a bound).
    """

    def __init__(self, *args, estimated: frozenset[str] = frozenset(), **kwargs):
        super().__init__(*args, **kwargs)
        self.estimated = estimated


def queue_counts(now: datetime, backend: str | None = None) -> QueueCounts:
    """Counts per (backend, queue) of every backend (or only ``backend``'s
    queues): exact up to the cap, estimated past it."""
    jobs = Job.objects.all()
    each = buckets(now)
    over: set[str] = set()
    if connections[jobs.db].vendor == "postgresql":
        capped = counting.capped_counts({n: jobs.filter(q) for n, q in each.items()})
        over = {name for name, n in capped.items() if n > counting.cap()}
    counts = exact_counts(jobs, {n: q for n, q in each.items() if n not in over})
    estimated = frozenset()
    if over:
        estimated = estimate(counts, jobs, now, {n: each[n] for n in over})
    if backend is not None:
        counts = {key: row for key, row in counts.items() if key[0] == backend}
    return QueueCounts(counts, estimated=estimated)


def exact_counts(jobs: QuerySet, wanted: dict[str, Q]) -> dict[tuple, dict]:
    """The ``wanted`` counts per (backend, queue), and the oldest ready job
    if ready jobs are wanted, from one query: a grouped count per count,
    joined by ``UNION ALL``, so that each one's WHERE is a single condition
    its index answers (an OR of them made PostgreSQL read a whole history
    day table for the last hour's done jobs)."""
    parts = [
        jobs.filter(q)
        .order_by()
        .values("backend", "queue")
        .annotate(
            count=Value(name),
            n=Count("pk"),
            oldest=Min("run_at") if name == "ready" else Value(None, NOW),
        )
        for name, q in wanted.items()
    ]
    if not parts:
        return {}
    rows = parts[0].union(*parts[1:], all=True) if len(parts) > 1 else parts[0]
    found: dict[tuple, dict] = {}
    for row in rows:
        counts = found.setdefault((row["backend"], row["queue"]), {})
        counts[row["count"]] = row["n"]
        if row["count"] == "ready":
            counts["oldest_ready"] = row["oldest"]
    return found


def estimate(
    counts: dict[tuple, dict], jobs: QuerySet, now: datetime, over: dict[str, Q]
) -> frozenset[str]:
    """Add to ``counts`` the estimates of the counts ``over`` the cap; the
    names of the counts estimated."""
    estimated = set(over)
    live = {name: over[name] for name in LIVE if name in over}
    if live:
        for key, row in estimates.sampled(grouped(jobs, live)).items():
            counts.setdefault(key, {}).update(row)
    for name in RECENT:
        if name in over:
            recent = jobs.filter(over[name])
            found = estimates.last_hour(recent, now, counting.cap(), HOUR)
            for key, n in found.items():
                counts.setdefault(key, {})[name] = n
    if "ready" in over:
        have = {key for key, row in counts.items() if row.get("ready")}
        oldest = estimates.oldest_ready(jobs.db, now, counting.cap(), have)
        for key, (first, exact) in oldest.items():
            counts.setdefault(key, {})["oldest_ready"] = first
            if not exact:
                estimated.add("oldest_ready")
    return frozenset(estimated)


def grouped(jobs: QuerySet, wanted: dict[str, Q]) -> QuerySet:
    """The ``wanted`` counts per (backend, queue), as a query whose WHERE
    keeps their rows only (never the old done jobs, each behind an index)."""
    annotations = {name: Count("pk", filter=q) for name, q in wanted.items()}
    return (
        jobs.filter(reduce(operator.or_, wanted.values()))
        .order_by()
        .values("backend", "queue")
        .annotate(**annotations)
    )
