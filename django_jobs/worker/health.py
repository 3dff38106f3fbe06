"""The worker's view of its database: one line when it goes, one when it is back.

While the database is away every statement fails, and the supervisor tries
again each second: logging each failure would bury the one line that
matters under thousands. ``DatabaseHealth`` says it once, with the reason,
reminds every ``REMIND_EVERY`` seconds, and says how long it lasted when a
statement gets through again. The traceback goes to DEBUG, once.
"""

from __future__ import annotations

import logging
import time

from django.db import DatabaseError, InterfaceError, OperationalError, connections

logger = logging.getLogger("django_jobs.worker")

REMIND_EVERY = 30.0


def transient(exc: BaseException) -> bool:
    """Whether ``exc`` says the database is unavailable (worth waiting for),
    rather than that it refuses what was asked (never worth retrying)."""
    return isinstance(exc, OperationalError | InterfaceError)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class DatabaseHealth:
    def __init__(self, db: str) -> None:
        self.db = db
        self.lost_at: float | None = None
        self.next_reminder = 0.0

    @property
    def away(self) -> bool:
        return self.lost_at is not None

    def failed(self, exc: DatabaseError, doing: str) -> None:
        """A statement failed because the database is unavailable."""
        now = time.monotonic()
        if self.lost_at is None:
            self.lost_at, self.next_reminder = now, now + REMIND_EVERY
            logger.warning(
                "database %r unavailable (%s); outcomes wait and no job is "
                "claimed until it is back",
                self.db,
                first_line(exc),
            )
            logger.debug("the first failure, trying to %s:", doing, exc_info=exc)
        elif now >= self.next_reminder:
            self.next_reminder = now + REMIND_EVERY
            logger.warning(
                "database %r still unavailable after %.0f s (%s)",
                self.db,
                now - self.lost_at,
                first_line(exc),
            )
        # Django would keep the broken connection: open a new one next time.
        connections[self.db].close()

    def ok(self) -> None:
        """A statement got through."""
        if self.lost_at is not None:
            logger.info(
                "database %r back after %.1f s",
                self.db,
                time.monotonic() - self.lost_at,
            )
            self.lost_at = None
