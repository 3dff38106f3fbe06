"""Estimates of the counts per queue that would read too many rows
(PostgreSQL).

``stats.queue_counts`` counts each state exactly while it holds at most
``counting.CAP`` jobs (10,000) in all: that costs a few milliseconds. Past
the cap an exact count per queue would read every one of those rows (a
million ready jobs: most of a second, at every refresh of the dashboard and
every scrape), so these estimate it instead, each from a bounded read:

- the jobs waiting, ready, delayed, reserved or buried: a sample of the hot
  table (``TABLESAMPLE SYSTEM``, about ``SAMPLE_PAGES`` pages of it, the
  same pages from one call to the next while the table keeps its size), the
  jobs of each queue and state in it scaled up by the fraction sampled. A
  queue with few jobs in such a state may show none;
- the jobs done and failed in the last hour: the ``CAP`` most recently
  finished, through the finish-time indexes, extrapolated to the hour from
  the time they span (the rate of the last minutes, assumed for the hour);
- the oldest ready job of each queue: the oldest ``CAP`` ready jobs (split
  between the priorities in use), read through the claim index; exact for
  every queue found among them, and for the others a bound ("at most this
  old").

Every estimate is rounded to two significant digits, so that it does not
pass for a count.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from math import floor, log10

from django.db import connections
from django.db.models import QuerySet

from .models import Job
from .states import State

#: About how many pages of the hot table a sample reads (40 MB).
SAMPLE_PAGES = 5_000
#: The fewest ready jobs the oldest-ready walk reads per priority.
WALK_MIN = 100

Key = tuple[str, str]


def rounded(value: float) -> int:
    """``value`` to two significant digits: 1,234,567 -> 1,200,000."""
    if value < 100:
        return round(value)
    digits = floor(log10(value)) - 1
    return int(round(value, -digits))


def sample_percent(using: str) -> float:
    """The percentage of the hot table's pages that makes ``SAMPLE_PAGES``."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(%s::regclass)"
            " / current_setting('block_size')::bigint",
            [Job._meta.db_table],
        )
        (pages,) = cursor.fetchone()
    return min(100.0, 100.0 * SAMPLE_PAGES / max(pages, 1))


def sampled(grouped: QuerySet) -> dict[Key, dict[str, int]]:
    """``grouped`` (counts per backend and queue) run over a sample of the
    hot table, each count scaled up and rounded."""
    connection = connections[grouped.db]
    percent = sample_percent(grouped.db)
    sql, params = grouped.query.sql_with_params()
    table = connection.ops.quote_name(Job._meta.db_table)
    sample = f"FROM ONLY {table} TABLESAMPLE SYSTEM ({percent!r}) REPEATABLE (0)"
    sql = sql.replace(f"FROM {table}", sample, 1)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    scale = 100.0 / percent
    return {
        (row.pop("backend"), row.pop("queue")): {
            name: rounded(value * scale) for name, value in row.items()
        }
        for row in rows
    }


def last_hour(
    recent: QuerySet, now: datetime, limit: int, hour: timedelta
) -> dict[Key, int]:
    """Per queue, the jobs of ``recent`` (finished in the last hour, more
    than ``limit`` of them) extrapolated from the ``limit`` latest."""
    latest = list(
        recent.order_by("-finished_at").values_list("backend", "queue", "finished_at")[
            :limit
        ]
    )
    if not latest:
        return {}
    span = max(now - latest[-1][2], timedelta(seconds=1))
    scale = min(hour / span, 3600.0)
    found: dict[Key, int] = {}
    for backend, queue, _ in latest:
        found[(backend, queue)] = found.get((backend, queue), 0) + 1
    return {key: rounded(n * scale) for key, n in found.items()}


def priorities(using: str) -> list[int]:
    """The priorities of the ready jobs, from the claim index (one probe
    each: a loose index scan)."""
    table = connections[using].ops.quote_name(Job._meta.db_table)
    ready = f"FROM ONLY {table} WHERE state = '{State.READY.value}'"
    with connections[using].cursor() as cursor:
        cursor.execute(
            "WITH RECURSIVE levels(priority) AS ("
            f" SELECT (SELECT priority {ready} ORDER BY priority DESC LIMIT 1)"
            f" UNION ALL SELECT (SELECT priority {ready}"
            " AND priority < levels.priority ORDER BY priority DESC LIMIT 1)"
            " FROM levels WHERE levels.priority IS NOT NULL"
            ") SELECT priority FROM levels WHERE priority IS NOT NULL"
        )
        return [row[0] for row in cursor.fetchall()]


def oldest_ready(
    using: str, now: datetime, limit: int, have_ready: set[Key]
) -> dict[Key, tuple[datetime, bool]]:
    """Per queue, the ``run_at`` of its oldest due job and whether it is
    exact, from the oldest due jobs of each priority (``limit`` in all).

    A queue met in the walk has its oldest job at that priority; one not met
    at a priority whose walk stopped short has none older than where it
    stopped, so its value there is a bound. ``have_ready``: the queues known
    to have due jobs, given a bound even if the walk met none of them.
    """
    levels = priorities(using)
    if not levels:
        return {}
    per_level = max(limit // len(levels), WALK_MIN)
    table = connections[using].ops.quote_name(Job._meta.db_table)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT l.priority, w.backend, w.queue, min(w.run_at), max(w.run_at),"
            " count(*) FROM unnest(%s::int[]) AS l(priority) CROSS JOIN LATERAL ("
            f" SELECT backend, queue, run_at FROM ONLY {table}"
            f" WHERE state = '{State.READY.value}' AND priority = l.priority"
            " AND run_at <= %s ORDER BY run_at LIMIT %s) w"
            " GROUP BY l.priority, w.backend, w.queue",
            [levels, now, per_level],
        )
        rows = cursor.fetchall()
    walked: dict[int, int] = {}
    reached: dict[int, datetime] = {}
    met: dict[Key, dict[int, datetime]] = {}
    for level, backend, queue, first, last, n in rows:
        walked[level] = walked.get(level, 0) + n
        reached[level] = max(reached.get(level, last), last)
        met.setdefault((backend, queue), {})[level] = first
    stopped = {level: reached[level] for level in walked if walked[level] >= per_level}
    found = {}
    for key in set(met) | have_ready:
        seen = met.get(key, {})
        bounds = [at for level, at in stopped.items() if level not in seen]
        if seen:
            first = min(seen.values())
            found[key] = (first, all(bound >= first for bound in bounds))
        elif bounds:
            found[key] = (min(bounds), False)
    return found
