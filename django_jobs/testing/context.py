"""The context a ``takes_context=True`` task gets when a test runs it.

In a worker, ``touch()``, ``checkpoint()`` and ``progress()`` ask the
supervisor over the child's pipe, and the supervisor writes them. A test runs
the job in its own process and holds the claim itself, so its holder makes
the same writes directly, through ``django_jobs.queue`` and fenced by the
same claim token: a test sees in the row exactly what a worker would leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import queue


@dataclass(slots=True, kw_only=True)
class InProcessHolder:
    """The holder of a job's claim when a test runs it (``context.Holder``)."""

    claim_token: str
    ttr: int
    db: str
    #: The latest checkpoint and progress written, to write again if the
    #: test's savepoint around a failed job rolled them back (a worker's
    #: supervisor writes them on its own connection, apart from the job's).
    written: dict[str, Any] = field(default_factory=dict)

    def touch(self, job_id: int, seconds: float | None) -> datetime:
        return queue.touch(
            job_id,
            token=self.claim_token,
            seconds=queue.lease_seconds(seconds, self.ttr),
            using=self.db,
        )

    def checkpoint(self, job_id: int, data: Any) -> datetime:
        deadline = queue.checkpoint(
            job_id,
            token=self.claim_token,
            data=data,
            seconds=float(self.ttr),
            using=self.db,
        )
        self.written["checkpoint"] = (job_id, data)
        return deadline

    def progress(self, job_id: int, report: dict[str, Any]) -> None:
        queue.progress(job_id, token=self.claim_token, using=self.db, **report)
        self.written["progress"] = (job_id, report)

    def write_again(self) -> None:
        """Write the latest checkpoint and progress again (after a rollback)."""
        if "checkpoint" in self.written:
            self.checkpoint(*self.written["checkpoint"])
        if "progress" in self.written:
            self.progress(*self.written["progress"])
