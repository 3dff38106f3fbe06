"""What a running task can do: the context a ``takes_context=True`` task gets.

``JobContext`` is Django's ``TaskContext`` (``context.task_result``,
``context.attempt``) with the job's own handles: extend its reservation,
save a checkpoint the next attempt resumes from, report progress. They go
to the holder of the job's claim (the worker's supervisor, over the child's
socket), which writes them fenced by the claim, so a job whose reservation
was lost (rescued, timed out, cancelled) gets ``ClaimLost`` and should stop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from .arguments import to_json
from .compat import TaskContext


class Holder(Protocol):
    """Whoever holds the running job's claim, and writes for it.

    In a worker, the child's channel to its supervisor (the supervisor
    writes); in a test, ``django_jobs.testing`` (which writes itself). Each
    raises ``ClaimLost`` when the claim is gone, and ``NotRecorded`` when the
    write was not made and will not be. A worker keeps a touch or a
    checkpoint that its database cannot take while it is away, and writes it
    when it is back (docs/tasks.rst, "Long jobs: touch").
    """

    def touch(self, job_id: int, seconds: float | None) -> datetime: ...

    def checkpoint(self, job_id: int, data: Any) -> datetime: ...

    def progress(self, job_id: int, report: dict[str, Any]) -> None: ...


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
    #: Who writes what the job asks (see ``Holder``).
    holder: Holder | None = None
    #: The results of the jobs it waited for (``workflows.after``), in order
    #: and by name: ``context.upstream["merchant"].return_value``. Empty for
    #: a job that waited for none; read with one query when first used.
    upstream: Sequence[Any] = ()

    def touch(self, seconds: float | None = None) -> datetime:
        """Extend the reservation to ``seconds`` from now (default: the ttr).

        Returns the deadline as the worker knows it: while its database is
        away the worker keeps the touch, and the deadline moves once the
        touch is written.
        """
        if seconds is not None and (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not math.isfinite(seconds)
            or seconds <= 0
        ):
            raise TypeError(
                f"touch(): seconds must be a number above 0, got {seconds!r}."
            )
        return self._moved(self._holder().touch(self.job_id, seconds))

    def checkpoint(self, data: Any) -> datetime:
        """Save ``data`` (JSON) on the job; the next attempt gets it back.

        A checkpoint also renews the reservation, like ``touch()``.
        """
        data = to_json(data, self.task_result.task.module_path, "checkpoint data")
        object.__setattr__(self, "last_checkpoint", data)
        return self._moved(self._holder().checkpoint(self.job_id, data))

    def progress(
        self, done: float, total: float | None = None, message: str = ""
    ) -> None:
        """Tell people how far the job has got (shown in the admin and the CLI).

        Cheap: it does not wait for the database, and the worker writes at
        most a couple of updates a second per job.
        """
        check_progress(done, total)
        report = {"done": done, "total": total, "message": str(message)[:500]}
        self._holder().progress(self.job_id, report)

    def _holder(self) -> Holder:
        if self.holder is None:
            raise RuntimeError(
                "This can only be called from a job run by runworker (or by "
                "django_jobs.testing)."
            )
        return self.holder

    def _moved(self, deadline: datetime) -> datetime:
        object.__setattr__(self, "deadline", deadline)
        return deadline


def check_progress(done: Any, total: Any) -> None:
    """TypeError unless ``done`` and ``total`` (or None) are finite numbers."""
    for name, value in (("done", done), ("total", total)):
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
        ):
            raise TypeError(
                f"progress(): {name} must be a number (finite), got {value!r}."
            )
