"""A child's database connections: opened ahead, checked, closed at exit.

``WarmDatabases`` is the supervisor's side: which databases recent jobs used,
so that the children to come connect to them ahead.

A child that runs a job using the ORM opens a connection of its own, the
first time the job touches the database: with one process per job, on every
job's critical path (a PostgreSQL connection costs milliseconds). When the
jobs this worker runs use the database, the supervisor tells each new spare
child so (``warm``), and the child opens its connections while it waits for
a job. A connection that waited long is checked before the job gets it, and
every connection is closed when the child exits.

Connections per worker, at most: the supervisor's and its LISTEN connection,
and, per slot of ``--concurrency``, one for the child running a job and one
for the spare child waiting for the next (``2 + 2 * concurrency`` per
database the jobs use).
"""

from __future__ import annotations

import time

from django.db import DatabaseError, connections

#: Jobs in a row that may not use a database before spares stop connecting
#: to it ahead of their job.
WARM_MEMORY = 20

#: A connection opened ahead that waited longer than this is checked (a
#: round trip) before a job gets it: the server or a pooler may have closed it.
CHECK_AFTER = 10.0

_opened_at: dict[str, float] = {}


def open_ahead(aliases: list[str]) -> None:
    """Open the connections a job is likely to need, while idle."""
    for alias in aliases:
        if alias not in connections.settings or alias in _opened_at:
            continue
        try:
            connections[alias].ensure_connection()
        except DatabaseError:
            continue  # the job will try, and say why if it fails
        _opened_at[alias] = time.monotonic()


def check_opened_ahead() -> None:
    """Before a job: close what was opened ahead and is no longer usable."""
    now = time.monotonic()
    for alias, opened in list(_opened_at.items()):
        del _opened_at[alias]
        connection = connections[alias]
        waited = now - opened > CHECK_AFTER
        if waited and connection.connection is not None and not connection.is_usable():
            connection.close()  # the job opens a new one if it needs it


def in_use() -> list[str]:
    """The aliases whose connection is open (after a job: what it used)."""
    return [c.alias for c in connections.all(initialized_only=True) if c.connection]


class WarmDatabases:
    """The databases recent jobs used (the supervisor's memory of them)."""

    def __init__(self) -> None:
        #: Each alias, and how many more jobs may not use it before it is dropped.
        self.left: dict[str, int] = {}

    def __bool__(self) -> bool:
        return bool(self.left)

    def aliases(self) -> list[str]:
        return sorted(self.left)

    def used(self, aliases: list[str]) -> None:
        """A job finished having used ``aliases``; one not used by
        ``WARM_MEMORY`` jobs in a row is dropped."""
        for alias in list(self.left):
            self.left[alias] -= 1
            if self.left[alias] <= 0:
                del self.left[alias]
        for alias in aliases:
            self.left[alias] = WARM_MEMORY
