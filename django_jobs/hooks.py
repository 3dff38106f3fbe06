"""Hooks: a team's own code around every job, without touching each task.

A hook is an object with any of the four methods of ``Hook`` (subclassing
it is optional), named by dotted path in ``OPTIONS['HOOKS']``; a path to a
class is instantiated once, with no arguments. Hooks are called in the
order given, each in the process where the moment happens::

    before_enqueue(enqueue)   the caller, before the job's INSERT
    after_enqueue(enqueue)    the caller, after it (enqueue.ids or .error)
    around_run(run)           the job's child: a generator that yields once,
                              around the task's call; ``ended = yield``
                              gives it how the call ended
    on_outcome(outcome)       the worker's supervisor, once the outcome is
                              written (in a thread of its own: never on the
                              supervisor's loop)

A hook that raises, hangs or returns what it should not is logged with its
name and left out of that moment: the job is enqueued, run and recorded as
if it were not there (hook_calls.py). The OpenTelemetry tracing is itself a
hook (django_jobs.tracing), first in the list unless ``TRACING`` is "off".
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from .attempts import Ended
    from .compat import Task

#: The moments a hook may take part in.
METHODS = ("before_enqueue", "after_enqueue", "around_run", "on_outcome")


class Hook:
    """A hook's methods, each optional: a hook defines only those it needs."""

    def before_enqueue(self, enqueue: Enqueue) -> None:
        """Before the INSERT; may add to ``enqueue.trace_context``."""

    def after_enqueue(self, enqueue: Enqueue) -> None:
        """After the INSERT (``enqueue.ids``), or its failure (``.error``)."""

    def around_run(self, run: Run) -> Generator[None, Ended, None] | None:
        """Around the task's call: yield once; the yield gives the ``Ended``."""
        return None

    def on_outcome(self, outcome: Outcome) -> None:
        """Once the supervisor has written what follows the attempt."""


@dataclass(slots=True)
class Enqueue:
    """One enqueue (of one job, or many of one task at once)."""

    task: Task
    backend: str
    queue: str
    priority: int
    ttr: int
    count: int
    #: What the job rows keep of the trace ("traceparent", "tracestate",
    #: "baggage"): written in the INSERT if not empty.
    trace_context: dict[str, str] = field(default_factory=dict)
    #: Each job's id once written (None where a unique job was already waiting).
    ids: list[int | None] = field(default_factory=list)
    error: BaseException | None = None
    #: Room for a hook to keep what its after_enqueue needs, by its own key.
    kept: dict[Any, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Run:
    """One attempt at a job, in its child process."""

    job_id: int
    task: Task
    queue: str
    backend: str
    attempt: int
    max_attempts: int
    priority: int
    ttr: int
    trace_context: dict[str, str] | None
    #: How the call ended: set before the hooks' ends run.
    ended: Ended | None = None
    #: The run's traceparent, if a hook traces it: the supervisor's log lines
    #: about the job carry its ids.
    traceparent: str | None = None

    @classmethod
    def of(cls, task: Task, job: Any) -> Run:
        """What the hooks around the call of ``job`` (a worker's ``JobSpec``)
        see of it."""
        return cls(
            job_id=job.id,
            task=task,
            queue=job.queue,
            backend=job.backend,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            priority=job.priority,
            ttr=job.ttr,
            trace_context=job.trace_context,
        )


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the supervisor wrote after an attempt (or without one)."""

    job_id: int
    task_path: str
    queue: str
    backend: str
    attempt: int
    max_attempts: int
    #: "done", "retried", "buried", "deleted", "postponed", "expired".
    then: str
    #: How the attempt failed (an ``attempts.Kind``'s value), or why the
    #: worker's rescuer decided without one (``LOST``, ``DEADLINE``,
    #: ``WORKFLOW_DEADLINE``); None if done.
    failure: str | None = None
    error: dict[str, str] | None = None
    trace_context: dict[str, str] | None = None
    #: The run's traceparent (what its child reported), if traced.
    traceparent: str | None = None

    @property
    def final(self) -> bool:
        """The job will not run again (unless someone retries it by hand)."""
        return self.then in ("done", "buried", "deleted", "expired")


#: ``Outcome.failure`` of a job taken back by the rescuer: its worker died
#: or went silent, or its reservation ran out with nobody to record it.
LOST = "lost"
#: ... of a job that was not started before its deadline (``expires``).
DEADLINE = "deadline"
#: ... of a job ended unstarted because its workflow missed its deadline.
WORKFLOW_DEADLINE = "workflow deadline"


class HookNotFound(ImportError):
    """A path of OPTIONS['HOOKS'] that does not import (check E017)."""


def load(path: str) -> Any:
    """The hook at ``path``: the object, or an instance of the class."""
    try:
        found = import_string(path)
    except ImportError as exc:
        raise HookNotFound(f"{path!r} does not import: {exc}") from exc
    if isinstance(found, type):
        found = found()
    if not any(callable(getattr(found, name, None)) for name in METHODS):
        raise HookNotFound(
            f"{path!r} has none of the methods of a hook ({', '.join(METHODS)})."
        )
    return found
