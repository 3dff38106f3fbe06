"""How an attempt failed, and what that means for the job.

The kind of a failure decides what happens next (another attempt, a burial
at once, a wait for a deploy) and how the worker's log line reads; both are
said here once.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    #: It ran to its end and returned what cannot be stored (not JSON).
    UNSTORABLE = "returned what cannot be stored"

    @property
    def final(self) -> bool:
        """Buried at once: another attempt could not do better (or, for a
        value that cannot be stored, would do the job's work again)."""
        return self in (Kind.CANCELLED, Kind.NOT_A_TASK, Kind.UNSTORABLE)

    @classmethod
    def from_child(cls, name: object) -> Kind:
        """The kind a child's outcome names (``kind.name``); a child can only
        report how its job ended, never a timeout, crash or cancellation."""
        kind = cls.__members__.get(str(name), cls.RAISED)
        return kind if kind in _REPORTED else cls.RAISED

    @property
    def attempted(self) -> bool:
        """Whether the task ran (and ``task_finished`` is sent)."""
        return self not in (Kind.NOT_A_TASK, Kind.NOT_IMPORTABLE)


class Stop(enum.Enum):
    """Why the supervisor stops a busy child (``Child.stopping``)."""

    #: Its job ran past its deadline: recorded as timed out.
    TIMEOUT = "timeout"
    #: The worker shuts down: its job goes back to ready, not an attempt.
    SHUTDOWN = "shutdown"
    #: Someone cancelled its job: recorded as cancelled.
    CANCEL = "cancel"
    #: Its job's claim was lost: nothing is recorded.
    LOST = "lost"
    #: It broke the protocol: recorded as a crash, with what it did wrong.
    PROTOCOL = "protocol"


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
        """The error's last line: the exception and its message (without a
        final full stop: the log line goes on with "; retried")."""
        lines = self.traceback.strip().splitlines()
        if self.kind is Kind.NOT_IMPORTABLE and lines:
            return lines[0].removesuffix(".")  # the explanation, not the end
        return lines[-1].removesuffix(".") if lines else self.exception_class_path


#: The kinds a child reports in its outcome message.
_REPORTED = frozenset(
    (Kind.RAISED, Kind.NOT_A_TASK, Kind.NOT_IMPORTABLE, Kind.UNSTORABLE)
)
