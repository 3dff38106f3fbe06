"""Worker rows as the pages and the metrics show them, for their tests."""

from __future__ import annotations

from django_jobs.models import Worker


def autoscaling_worker(**fields) -> Worker:
    """A live worker started with ``--concurrency 2:16``, grown to 6."""
    values = {
        "id": "w3",
        "hostname": "h3",
        "pid": 3,
        "concurrency": 6,
        "min_concurrency": 2,
        "max_concurrency": 16,
        "connections": 14,
        **fields,
    }
    return Worker.objects.create(**values)
