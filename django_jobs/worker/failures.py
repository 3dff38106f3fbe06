"""How an attempt failed, and what that means for the job.

The kind of a failure decides what happens next (another attempt, a burial
at once, a wait for a deploy) and how the worker's log line reads; both are
said here once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..models import Job


class Kind(enum.Enum):
    #: The task raised (any exception, SystemExit included).
    RAISED = "failed"
    #: It ran past its reservation and was killed.
    TIMED_OUT = "timed out"
    #: Its process ended without reporting an outcome.
    CRASHED = "crashed"
    #: Someone cancelled it while it ran.
    CANCELLED = "cancelled"
    #: Its path names something that is not a Task: it is never called.
    NOT_A_TASK = "unrunnable"
    #: Its path does not import here (yet): tried again for a while.
    NOT_IMPORTABLE = "not importable"

    @property
    def final(self) -> bool:
        """Buried at once: another attempt could not do better."""
        return self in (Kind.CANCELLED, Kind.NOT_A_TASK)

    @property
    def attempted(self) -> bool:
        """Whether the task ran (and ``task_finished`` is sent)."""
        return self not in (Kind.NOT_A_TASK, Kind.NOT_IMPORTABLE)


@dataclass(frozen=True, slots=True)
class Failure:
    job: Job
    kind: Kind
    exception_class_path: str
    traceback: str
    #: How the process ended, for a crash ("exit code 3").
    how: str = ""
    #: How long the task ran, as its child measured it.
    seconds: float | None = None

    def describe(self) -> str:
        """The start of the worker's log line: "failed after 12.0 ms"."""
        text = self.kind.value
        if self.how:
            text += f" ({self.how})"
        if self.seconds is not None:
            text += f" after {self.seconds * 1000:.1f} ms"
        return text

    def summary(self) -> str:
        """The error's last line: the exception and its message."""
        lines = self.traceback.strip().splitlines()
        if self.kind is Kind.NOT_IMPORTABLE and lines:
            return lines[0]  # the explanation, not the traceback's end
        return lines[-1] if lines else self.exception_class_path
