"""The distinct queues and tasks for the job list's filters and search."""

from __future__ import annotations

from ..distinct import distinct_values


def request_values(request, column: str) -> list[str]:
    """``distinct_values(column)``, walked once per request.

    The task filter lists the task paths and a search matches against them:
    one page showing both walks the index once.
    """
    cache = request.__dict__.setdefault("_django_jobs_values", {})
    if column not in cache:
        cache[column] = distinct_values(column)
    return cache[column]
