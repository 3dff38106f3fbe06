"""Job states, the transitions between them, and how they look to django.tasks.

The transitions live here as data so that ``django_jobs.queue`` can build every guarded
update from them, and so that a reader can see the whole life cycle at once.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .compat import TaskResultStatus


class State(models.TextChoices):
    #: Waits for other jobs of its workflow (its upstream) to finish; becomes
    #: ready in the transaction that records the last one's outcome.
    WAITING = "waiting", _("waiting")
    READY = "ready", _("ready")
    RESERVED = "reserved", _("reserved")
    DONE = "done", _("done")
    BURIED = "buried", _("buried")


# "Delayed" is not stored: it is a ready job whose run_at is in the future.
# It is reported as a state of its own wherever states are counted.
DELAYED = "delayed"

#: What each state a person sees means, in words that need no beanstalkd:
#: the console's legend and tooltips and ``jobs show`` say these.
MEANINGS = {
    State.WAITING: _("waiting for other jobs (its upstream) to finish first"),
    State.READY: _("waiting for a worker, due now"),
    DELAYED: _("waiting for its time: a retry's backoff, or enqueued to run later"),
    State.RESERVED: _("running: a worker has it"),
    State.DONE: _("finished successfully"),
    State.BURIED: _(
        "failed for good (or cancelled), kept for inspection; "
        "it runs again only if retried"
    ),
}

# Every operation of django_jobs.queue, with the states it may start from and the state
# it leaves the job in. ``None`` as a target means the row is deleted.
#
# A reserved job belongs to the worker that claimed it: a transition out of
# ``reserved`` needs the claim token (the fence), whoever asks. The rescuer
# reads the token of an expired reservation and acts as its holder, so a late
# write by the original worker fails instead of overwriting the outcome.
TRANSITIONS: dict[str, tuple[frozenset[State], State | None]] = {
    "claim": (frozenset({State.READY}), State.RESERVED),
    "touch": (frozenset({State.RESERVED}), State.RESERVED),
    # Writes by the holder that change no state: checkpoints, progress, logs.
    "annotate": (frozenset({State.RESERVED}), State.RESERVED),
    "complete": (frozenset({State.RESERVED}), State.DONE),
    "retry": (frozenset({State.RESERVED}), State.READY),
    "release": (frozenset({State.RESERVED}), State.READY),
    "bury": (frozenset({State.WAITING, State.READY, State.RESERVED}), State.BURIED),
    "kick": (frozenset({State.READY, State.BURIED}), State.READY),
    # Workflows (queue/workflows.py). The last of a waiting job's upstream
    # jobs finished: it may run. One of them failed: it ends too, unless it
    # runs anyway. That one was kicked (retried): it waits again.
    "unblock": (frozenset({State.WAITING}), State.READY),
    "abandon": (frozenset({State.WAITING}), State.BURIED),
    "wait_again": (frozenset({State.BURIED}), State.WAITING),
    "reprioritise": (frozenset({State.READY}), State.READY),
    # A ready job is buried at once; a reserved one is only marked (it is the
    # one write anybody may make to a reserved job), and its worker, the
    # token holder, stops it and buries it.
    "cancel": (frozenset({State.WAITING, State.READY}), State.BURIED),
    "request_cancel": (frozenset({State.RESERVED}), State.RESERVED),
    # A job past its deadline (``expires``, or its workflow's), never started.
    "expire": (frozenset({State.WAITING, State.READY}), State.BURIED),
    "delete": (frozenset(State), None),
}

#: Operations anybody may apply to a reserved job, without its claim token:
#: they change nothing its holder relies on.
OPEN = frozenset({"request_cancel"})

TASK_STATUS: dict[State, TaskResultStatus] = {
    # Django has no closer status: it has not started, and will.
    State.WAITING: TaskResultStatus.READY,
    State.READY: TaskResultStatus.READY,
    State.RESERVED: TaskResultStatus.RUNNING,
    State.DONE: TaskResultStatus.SUCCESSFUL,
    State.BURIED: TaskResultStatus.FAILED,
}


#: Operations after which a job may have left its batch's waiting set (and
#: its workflow's jobs that wait for it must end or go on).
FINISHING = frozenset({"bury", "cancel", "expire", "delete", "abandon"})

#: The states of a job that has not finished: it may still run.
UNFINISHED = frozenset({State.WAITING, State.READY, State.RESERVED})


def sources(operation: str) -> frozenset[State]:
    """The states a job must be in for ``operation`` to apply to it."""
    return TRANSITIONS[operation][0]


def only_source(operation: str) -> State:
    """The one state ``operation`` may start from, for a statement written for
    one (the claim, the completion: see ``queue.sql``); a ValueError if the
    table gives it several."""
    found = TRANSITIONS[operation][0]
    if len(found) != 1:
        raise ValueError(f"{operation} starts from {len(found)} states, not one")
    return next(iter(found))


def target(operation: str) -> State | None:
    """The state ``operation`` leaves a job in (``None``: the row is gone)."""
    return TRANSITIONS[operation][1]


def allowed(operation: str, state: str) -> bool:
    return state in TRANSITIONS[operation][0]


def task_status(state: str) -> TaskResultStatus:
    return TASK_STATUS[State(state)]
