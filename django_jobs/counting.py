"""Counts that stop at a cap, so that no count reads more than a few
thousand rows.

A ``COUNT(*)`` reads every row it counts: a million ready jobs cost the
database most of a second, on every refresh of the console. Nobody needs
that number to the unit: past ``CAP`` rows a count is either shown as
"more than 10,000" (the job list's pages) or replaced by an estimate (the
counts per queue of the dashboard, ``jobs stats`` and the metrics: see
``estimates``). Below it, counts are exact.

The cap is read when a count is made, so a test (or a project) can lower it
with ``django_jobs.counting.CAP = 3``.
"""

from __future__ import annotations

from django.db import connections
from django.db.models import QuerySet

#: The most rows a count reads; counts past it say "more than CAP".
CAP = 10_000


def cap() -> int:
    """The cap in force (``CAP``, looked up each time)."""
    return CAP


def capped_count(queryset: QuerySet, limit: int | None = None) -> int:
    """The number of rows of ``queryset``, or ``limit + 1`` when there are
    more than ``limit`` (``CAP`` by default): it reads at most that many."""
    limit = cap() if limit is None else limit
    return queryset.order_by()[: limit + 1].count()


def capped_counts(
    querysets: dict[str, QuerySet], limit: int | None = None
) -> dict[str, int]:
    """``capped_count`` of each queryset, in one query (one round trip for
    the dashboard's seven counts)."""
    limit = cap() if limit is None else limit
    if not querysets:
        return {}
    parts, params = [], []
    using = None
    for queryset in querysets.values():
        using = queryset.db
        capped = queryset.order_by().values("pk")[: limit + 1]
        sql, more = capped.query.sql_with_params()
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) capped)")
        params.extend(more)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT " + ", ".join(parts), params)
        row = cursor.fetchone()
    return dict(zip(querysets, row, strict=True))
