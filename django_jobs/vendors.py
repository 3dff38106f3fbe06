"""The databases django-jobs runs on, and the one way it refuses the others.

The claim needs ``FOR UPDATE SKIP LOCKED`` where several processes claim at
once; its hot statements are written by hand for each database. PostgreSQL
and SQLite run each of them as one statement (``UPDATE ... RETURNING``);
MariaDB and MySQL (Django's vendor ``mysql`` for both) have no RETURNING on
UPDATE, so there each is a short transaction that locks its rows, writes
them and reads them back (``queue.mysql``). MariaDB is built and tested;
MySQL 8 is designed for (the code keeps to what both servers support) but
has no server on our machines to test it.
"""

from __future__ import annotations

from django.db import NotSupportedError

SUPPORTED_VENDORS = ("postgresql", "sqlite", "mysql")

#: The oldest servers of Django's vendor ``mysql`` with SKIP LOCKED.
MARIADB_MINIMUM = (10, 6)
MYSQL_MINIMUM = (8, 0, 1)


def require_supported(vendor: str) -> None:
    """NotSupportedError, in one sentence, for any other database."""
    if vendor not in SUPPORTED_VENDORS:
        raise NotSupportedError(
            f"django_jobs supports PostgreSQL, MariaDB, MySQL and SQLite, not {vendor}."
        )


def server_too_old(connection) -> str | None:
    """Why ``connection``'s server cannot run the queue, in one line, or None.

    Only MariaDB and MySQL have versions without what the claim needs:
    ``SKIP LOCKED`` came with MariaDB 10.6 and MySQL 8.0.1.
    """
    if connection.vendor != "mysql":
        return None
    found = connection.mysql_version
    if connection.mysql_is_mariadb:
        name, needed = "MariaDB", MARIADB_MINIMUM
    else:
        name, needed = "MySQL", MYSQL_MINIMUM
    if tuple(found[: len(needed)]) >= needed:
        return None
    return (
        f"{name} {'.'.join(map(str, found))} is too old for django_jobs: "
        f"it needs {name} {'.'.join(map(str, needed))} or newer (SKIP LOCKED)."
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
