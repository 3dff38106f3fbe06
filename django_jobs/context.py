"""What a running task can do: the context a ``takes_context=True`` task gets.

``JobContext`` is Django's ``TaskContext`` (``context.task_result``,
``context.attempt``) with the job's own handles: extend its reservation,
save a checkpoint the next attempt resumes from, report progress. They talk
to the worker's supervisor over the child's pipe; the supervisor writes them,
fenced by the claim, so a job whose reservation was lost (rescued, timed
out, cancelled) gets ``ClaimLost`` and should stop.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.tasks import TaskContext
from django.utils.dateparse import parse_datetime

from .arguments import to_json
from .exceptions import ClaimLost

#: The id of the job this process is running, if any: jobs it enqueues are
#: its children.
current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_job", default=None
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobContext(TaskContext):
    """The ``context`` a ``takes_context=True`` task is called with.

    Django's ``TaskContext`` (``task_result``, ``attempt``) with the job's
    id, queue and reservation deadline, what its previous attempt saved, and
    ways to talk to its worker while it runs.
    """

    job_id: int
    queue: str
    #: When the reservation runs out: touch() and checkpoint() move it.
    deadline: datetime
    #: What the previous attempt saved with checkpoint(), or None.
    last_checkpoint: Any = None

    def touch(self, seconds: float | None = None) -> datetime:
        """Extend the reservation to ``seconds`` from now (default: the ttr)."""
        from .worker import child

        reply = child.request({"op": "touch", "id": self.job_id, "seconds": seconds})
        return self._moved(reply, "touch")

    def checkpoint(self, data: Any) -> datetime:
        """Save ``data`` (JSON) on the job; the next attempt gets it back.

        A checkpoint also renews the reservation, like ``touch()``.
        """
        from .worker import child

        data = to_json(data, self.task_result.task.module_path, "checkpoint data")
        reply = child.request({"op": "checkpoint", "id": self.job_id, "data": data})
        object.__setattr__(self, "last_checkpoint", data)
        return self._moved(reply, "checkpoint")

    def progress(
        self, done: float, total: float | None = None, message: str = ""
    ) -> None:
        """Tell people how far the job has got (shown in the admin and the CLI).

        Cheap: it does not wait for the database, and the worker writes at
        most a couple of updates a second per job.
        """
        from .worker import child

        check_progress(done, total)
        child.notify(
            {
                "op": "progress",
                "id": self.job_id,
                "done": done,
                "total": total,
                "message": str(message)[:500],
            }
        )

    def _moved(self, reply: dict, operation: str) -> datetime:
        if not reply.get("ok"):
            raise ClaimLost(self.job_id, operation)
        deadline = parse_datetime(reply["deadline"])
        object.__setattr__(self, "deadline", deadline)
        return deadline


def check_progress(done: Any, total: Any) -> None:
    """TypeError unless ``done`` and ``total`` (or None) are numbers."""
    for name, value in (("done", done), ("total", total)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int | float)
        ):
            raise TypeError(f"progress(): {name} must be a number, got {value!r}.")
