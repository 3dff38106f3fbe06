"""A failed attempt as the supervisor records it, and why it stops a child.

The kind of a failure (``attempts.Kind``) decides what happens next
(``attempts.follows``) and how the worker's log line reads. A child reports
how its job ended in an ``Outcome``; ``Failure.of`` reads one, and the
supervisor builds the failures a child cannot report (a timeout, a crash, a
cancellation) itself.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..attempts import Kind
from ..exceptions import ChildCrashed, JobCancelled, JobTimeout, class_path

if TYPE_CHECKING:
    from ..models import Job
    from .protocol import Outcome


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
    #: Its job went over its memory or CPU limit (``Child.over_limit``):
    #: recorded as a failed attempt, retried as its task says.
    LIMIT = "limit"


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

    @classmethod
    def of(cls, job: Job, outcome: Outcome) -> Failure:
        """The failure a child reported (``outcome.ok`` is false)."""
        kind = outcome.failure_kind
        error = outcome.error or {}
        return cls(
            job,
            kind,
            str(error.get("exception_class_path", "")),
            str(error.get("traceback", "")),
            seconds=outcome.seconds if kind.attempted else None,
        )

    @classmethod
    def timed_out(cls, job: Job, ttr_seconds: float) -> Failure:
        message = (
            f"{JobTimeout.__name__}: the job ran past its ttr of {ttr_seconds:g}s "
            "and its process group was killed\n"
        )
        return cls(job, Kind.TIMED_OUT, class_path(JobTimeout), message)

    @classmethod
    def cancelled(cls, job: Job) -> Failure:
        message = f"{JobCancelled.__name__}: cancelled while it ran; stopped\n"
        return cls(job, Kind.CANCELLED, class_path(JobCancelled), message)

    @classmethod
    def stopped(cls, job: Job, reason: Stop | None) -> Failure | None:
        """The failure a job stopped by the supervisor for ``reason`` ends
        with, whatever it reported: timed out or cancelled (None for any
        other reason, which has its own record)."""
        if reason is Stop.TIMEOUT:
            return cls.timed_out(job, job.ttr)
        if reason is Stop.CANCEL:
            return cls.cancelled(job)
        return None

    @classmethod
    def crashed(cls, job: Job, how: str) -> Failure:
        message = (
            f"{ChildCrashed.__name__}: the job's process ended ({how}) "
            "without reporting an outcome\n"
        )
        return cls(job, Kind.CRASHED, class_path(ChildCrashed), message, how)

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
