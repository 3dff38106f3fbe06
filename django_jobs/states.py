"""Job states, the transitions between them, and how they look to django.tasks.

The transitions live here as data so that ``django_jobs.queue`` can build every guarded
update from them, and so that a reader can see the whole life cycle at once.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from .compat import TaskResultStatus


class State(models.TextChoices):
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
    "bury": (frozenset({State.READY, State.RESERVED}), State.BURIED),
    "kick": (frozenset({State.READY, State.BURIED}), State.READY),
    "reprioritise": (frozenset({State.READY}), State.READY),
    # A ready job is buried at once; a reserved one is only marked (it is the
    # one write anybody may make to a reserved job), and its worker, the
    # token holder, stops it and buries it.
    "cancel": (frozenset({State.READY}), State.BURIED),
    "request_cancel": (frozenset({State.RESERVED}), State.RESERVED),
    # A ready job past its deadline (``expires``), never started.
    "expire": (frozenset({State.READY}), State.BURIED),
    "delete": (frozenset(State), None),
}

#: Operations anybody may apply to a reserved job, without its claim token:
#: they change nothing its holder relies on.
OPEN = frozenset({"request_cancel"})

TASK_STATUS: dict[State, TaskResultStatus] = {
    State.READY: TaskResultStatus.READY,
    State.RESERVED: TaskResultStatus.RUNNING,
    State.DONE: TaskResultStatus.SUCCESSFUL,
    State.BURIED: TaskResultStatus.FAILED,
}


#: Operations after which a job may have left its batch's waiting set.
FINISHING = frozenset({"bury", "cancel", "expire", "delete"})


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
