"""The context a ``takes_context=True`` task gets when a test runs it.

In a worker, ``touch()``, ``checkpoint()`` and ``progress()`` ask the
supervisor over the child's pipe, and the supervisor writes them. A test runs
the job in its own process and holds the claim itself, so this context makes
the same writes directly, through ``django_jobs.queue`` and fenced by the
same claim token: a test sees in the row exactly what a worker would leave.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .. import queue
from ..arguments import to_json
from ..context import JobContext, check_progress


@dataclass(frozen=True, slots=True, kw_only=True)
class InProcessContext(JobContext):
    claim_token: str
    ttr: int
    db: str
    #: The latest checkpoint and progress written, to write again if the
    #: test's savepoint around a failed job rolled them back (a worker's
    #: supervisor writes them on its own connection, apart from the job's).
    written: dict[str, Any] = field(default_factory=dict)

    def touch(self, seconds: float | None = None) -> datetime:
        """Extend the reservation to ``seconds`` from now (default: the ttr)."""
        deadline = queue.touch(
            self.job_id,
            token=self.claim_token,
            seconds=float(seconds) if seconds else float(self.ttr),
            using=self.db,
        )
        object.__setattr__(self, "deadline", deadline)
        return deadline

    def checkpoint(self, data: Any) -> datetime:
        """Save ``data`` (JSON) on the job; the next attempt gets it back."""
        data = to_json(data, self.task_result.task.module_path, "checkpoint data")
        deadline = queue.checkpoint(
            self.job_id,
            token=self.claim_token,
            data=data,
            seconds=float(self.ttr),
            using=self.db,
        )
        object.__setattr__(self, "last_checkpoint", data)
        object.__setattr__(self, "deadline", deadline)
        self.written["checkpoint"] = data
        return deadline

    def progress(
        self, done: float, total: float | None = None, message: str = ""
    ) -> None:
        """Record how far the job has got, as the worker would."""
        check_progress(done, total)
        report = {"done": done, "total": total, "message": str(message)[:500]}
        queue.progress(self.job_id, token=self.claim_token, using=self.db, **report)
        self.written["progress"] = report

    def write_again(self) -> None:
        """Write the latest checkpoint and progress again (after a rollback)."""
        if "checkpoint" in self.written:
            queue.checkpoint(
                self.job_id,
                token=self.claim_token,
                data=self.written["checkpoint"],
                seconds=float(self.ttr),
                using=self.db,
            )
        if "progress" in self.written:
            queue.progress(
                self.job_id,
                token=self.claim_token,
                using=self.db,
                **self.written["progress"],
            )
