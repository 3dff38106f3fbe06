"""The hot table's indexes, rebuilt when they have grown far past its rows
(PostgreSQL).

Every claim and completion of a job writes a new row version and an entry
in most indexes; vacuum removes the dead ones and gives back the heap's
empty pages at its end, but never an index's pages: it keeps them for
reuse. After a session held an old snapshot for minutes (vacuum could
remove nothing meanwhile), the hot table's heap comes back to its size in
a vacuum or two, and its indexes stay several times bigger than they need
be. ``REINDEX TABLE CONCURRENTLY`` of the hot table alone (not its history
days) builds them again from its live rows without blocking reads or
writes: 62 ms for 30 MB of indexes on the machine of docs/scaling.rst.
"""

from __future__ import annotations

import logging

from django.db import connections

from ..models import Job
from .guard import get_db

logger = logging.getLogger("django_jobs.queue")

#: Indexes this many times the heap's size are bloated...
BLOAT_RATIO = 4
#: ...once they weigh at least this much (a small table's are left alone).
BLOAT_FLOOR = 8 * 2**20
#: How long a rebuild waits for the transactions it must see end (seconds).
#: Waiting, it would keep vacuum off the table (it holds a lock vacuum
#: needs); given up, it is tried again later (``reindex`` cleans up).
WAIT = 10


def sizes(using: str | None = None) -> tuple[int, int]:
    """The hot table's heap and the sum of its indexes, in bytes."""
    with connections[get_db(using)].cursor() as cursor:
        cursor.execute(
            "SELECT pg_relation_size(%s::regclass), pg_indexes_size(%s::regclass)",
            [Job._meta.db_table] * 2,
        )
        heap, indexes = cursor.fetchone()
    return heap, indexes


def bloated(using: str | None = None, at_least: int = 0) -> bool:
    """Whether the hot table's indexes weigh ``BLOAT_RATIO`` times its heap,
    ``BLOAT_FLOOR`` and ``at_least`` bytes."""
    heap, indexes = sizes(using)
    return indexes >= max(BLOAT_FLOOR, BLOAT_RATIO * heap, at_least)


def reindex(using: str | None = None) -> tuple[int, int]:
    """Build the hot table's indexes again, concurrently; their size before
    and after. Outside any transaction (``REINDEX CONCURRENTLY`` cannot run
    in one), on a connection of its own: it sets ``lock_timeout``. An
    earlier rebuild that was stopped half way (or gave up waiting) leaves
    invalid copies (``..._ccnew``, ``..._ccold``), which would cost every
    write: they are dropped first."""
    db = get_db(using)
    table = Job._meta.db_table
    _, before = sizes(db)
    with connections[db].cursor() as cursor:
        cursor.execute(f"SET lock_timeout = '{int(WAIT * 1000)}ms'")
        cursor.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
            " WHERE i.indrelid = %s::regclass AND NOT i.indisvalid"
            r" AND c.relname ~ '_cc(new|old)[0-9]*$'",
            [table],
        )
        for (leftover,) in cursor.fetchall():
            cursor.execute(f'DROP INDEX CONCURRENTLY IF EXISTS "{leftover}"')
            logger.warning("dropped %s, left by a rebuild that did not end", leftover)
        cursor.execute(f'REINDEX TABLE CONCURRENTLY "{table}"')
    _, after = sizes(db)
    return before, after
