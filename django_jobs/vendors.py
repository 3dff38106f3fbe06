"""The databases django-jobs runs on, and the one way it refuses the others.

The claim needs ``UPDATE ... RETURNING`` and, where several processes claim
at once, ``FOR UPDATE SKIP LOCKED``; its hot statements are written by hand
for each. Only PostgreSQL and SQLite have been built and tested.
"""

from __future__ import annotations

from django.db import NotSupportedError

SUPPORTED_VENDORS = ("postgresql", "sqlite")


def require_supported(vendor: str) -> None:
    """NotSupportedError, in one sentence, for any other database."""
    if vendor not in SUPPORTED_VENDORS:
        raise NotSupportedError(
            f"django_jobs supports PostgreSQL and SQLite, not {vendor}."
        )


#: Database connections per child slot of a worker: the child running a job
#: and the spare forked ahead of the next (worker/child_connections.py).
CONNECTIONS_PER_SLOT = 2


def worker_connections(vendor: str, slots: int) -> int:
    """The connections a worker may hold on its database with ``slots``
    child slots: the supervisor's, its LISTEN connection on PostgreSQL
    (worker/listener.py), and two per slot. What ``CONNECTION_BUDGET``
    counts (worker/budget.py) and what check E015 compares it with."""
    listener = 1 if vendor == "postgresql" else 0
    return 1 + listener + CONNECTIONS_PER_SLOT * slots
