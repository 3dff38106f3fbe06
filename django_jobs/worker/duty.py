"""A duty: something a worker does every so often, beside its jobs.

Each has an interval and a ``run_once()`` that a test can call; the duties
a fleet needs once (``fleet_wide``) run only in the worker that holds the
fleet's lease (see fleet.py).
"""

from __future__ import annotations

import logging
import random

from django.db import DatabaseError, connections

from .outage import DatabaseHealth, transient

logger = logging.getLogger("django_jobs.worker")


class Duty:
    """Something to do every ``interval`` seconds (jittered by 10%)."""

    interval: float = 1.0
    db: str
    #: Run by the fleet's leader only (see fleet.py), not by every worker.
    fleet_wide: bool = False
    #: Told when the database is away (set by the supervisor).
    health: DatabaseHealth | None = None

    def __init__(self) -> None:
        self.next_run = 0.0

    def due_at(self) -> float | None:
        """When it next wants to run (None: not until something changes)."""
        return self.next_run

    def maybe_run(self, now: float) -> None:
        if now >= self.next_run:
            self.next_run = now + self.interval * random.uniform(0.9, 1.1)
            try:
                self.run_once()
            except DatabaseError as exc:
                if self.health is not None and transient(exc):
                    self.health.failed(exc, type(self).__name__)
                    return
                logger.exception("%s failed; it will run again", type(self).__name__)
                connections[self.db].close_if_unusable_or_obsolete()
            except Exception:
                logger.exception("%s failed; it will run again", type(self).__name__)

    def run_once(self) -> None:
        raise NotImplementedError
