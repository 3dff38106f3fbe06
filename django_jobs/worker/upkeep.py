"""Upkeep that may take seconds, each in a thread of its own: the drop of a
detached history day and the rebuild of the hot table's indexes
(PostgreSQL).

The supervisor's loop must not stop that long: its children's outcomes,
deadlines and claims wait on it. Neither holds anybody up on the server: a
detached day has no readers left, and ``REINDEX CONCURRENTLY`` blocks no
read or write. Each runs one at a time, on a connection of its own that is
closed when it ends; a worker that exits meanwhile leaves the work to the
next run (a table still detached, a rebuild's invalid copies, which the
next rebuild drops).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date

from django.db import DatabaseError, connections

from .. import queue
from ..exceptions import sqlstate
from .duty import Duty
from .options import WorkerOptions

logger = logging.getLogger("django_jobs.worker")

#: The SQLSTATE of a role that may not rebuild the table (not its owner).
INSUFFICIENT_PRIVILEGE = "42501"


class InThread:
    """One piece of upkeep at a time, in a daemon thread with its own
    connection to ``db``."""

    def __init__(self, db: str, name: str) -> None:
        self.db = db
        self.name = name
        self.thread: threading.Thread | None = None

    def busy(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def start(self, work: Callable[[], None]) -> None:
        self.thread = threading.Thread(
            target=self.run, args=(work,), name=self.name, daemon=True
        )
        self.thread.start()

    def run(self, work: Callable[[], None]) -> None:
        try:
            work()
        except Exception:
            logger.exception("%s failed; the next run tries again", self.name)
        finally:
            connections[self.db].close()  # this thread's own

    def join(self, timeout: float) -> None:
        if self.thread is not None:
            self.thread.join(timeout)


class HistoryDrops(InThread):
    """Drops the history's detached day tables (``history.detach``): the
    server deletes a big day's files before the drop returns, seconds for
    millions of rows."""

    def __init__(self, db: str) -> None:
        super().__init__(db, "django-jobs-history")

    def start(self, before: date) -> None:  # type: ignore[override]
        if self.busy():
            return
        if not any(day < before for day in queue.history.detached(self.db)):
            return

        def drop() -> None:
            if dropped := queue.history.drop_detached(before, using=self.db):
                logger.info("dropped the history of %s", ", ".join(dropped))

        super().start(drop)


class Reindexer(Duty):
    """Rebuilds the hot table's indexes once they have grown ``BLOAT_RATIO``
    times its heap (``queue.upkeep``): after a snapshot held for minutes,
    vacuum gives the heap back but never an index's pages. Looks every
    minute (one statement); rebuilds in a thread of its own."""

    fleet_wide = True
    interval = 60.0

    def __init__(self, options: WorkerOptions) -> None:
        super().__init__()
        self.db = options.db
        self.enabled = queue.history.available(self.db)  # PostgreSQL
        self.rebuilds = InThread(self.db, "django-jobs-reindex")
        #: The indexes' size after the last rebuild: the next waits until
        #: they have doubled, lest a table whose indexes are big by nature
        #: be rebuilt every minute.
        self.rebuilt_to = 0

    def due_at(self) -> float | None:
        return self.next_run if self.enabled else None

    def run_once(self) -> bool:
        if not self.enabled or self.rebuilds.busy():
            return False
        if not queue.upkeep.bloated(self.db, at_least=2 * self.rebuilt_to):
            return False
        self.rebuilds.start(self.rebuild)
        return True

    def rebuild(self) -> None:
        try:
            before, after = queue.upkeep.reindex(self.db)
        except DatabaseError as exc:
            said = str(exc).strip().splitlines()[0]
            if sqlstate(exc) != INSUFFICIENT_PRIVILEGE:  # busy: next minute
                logger.info("rebuilding the job table's indexes: %s", said)
                return
            self.enabled = False
            logger.warning(
                "cannot rebuild the job table's indexes (%s): they stay as big as"
                " they grew; REINDEX TABLE CONCURRENTLY django_jobs_job as its"
                " owner shrinks them",
                said,
            )
            return
        self.rebuilt_to = after
        logger.info(
            "rebuilt the job table's indexes: %.1f MB -> %.1f MB",
            before / 2**20,
            after / 2**20,
        )
