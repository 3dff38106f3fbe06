"""The only code that changes job state.

Every operation is one guarded write: it names the states it may start from
(``states.TRANSITIONS``) and, for a reserved job, the claim token it was given.
A write that matches no row did not happen; the operation then finds out why
and raises ``JobDoesNotExist``, ``InvalidTransition`` or ``ClaimLost``.

Operations given one job id raise when they are refused. Given several ids,
they apply to those that qualify and return how many did, because a console
acting on a selection must not fail as a whole for one job that moved on.
"""

from . import history, upkeep, workflows
from .batches import seal, settle, settle_pending
from .claim import (
    claim,
    claim_statement,
    limited_queues,
    new_claim_token,
    release_claim,
)
from .console import (
    bury,
    cancel,
    check_queue,
    configure,
    configured_queues,
    delete,
    kick,
    pause,
    reprioritise,
    resume,
)
from .doubt import completion_landed, failure_landed
from .duties import cutoff, expire, prune, rescue, silent_workers
from .enqueue import enqueue, insert, not_migrated
from .errors import attempt_error, error_entry
from .guard import get_db, unheld
from .holder import (
    Failed,
    Then,
    backoff_delay,
    bury_held,
    checkpoint,
    complete,
    complete_returning,
    deletes,
    fail,
    lease_seconds,
    postpone,
    progress,
    release,
    retry,
    save_logs,
    touch,
)
from .keys import prune_keys
from .wake import channel, wake_due
from .workflow_rows import settle_running, settle_workflows

__all__ = [
    "Failed",
    "Then",
    "attempt_error",
    "backoff_delay",
    "bury",
    "bury_held",
    "cancel",
    "channel",
    "check_queue",
    "checkpoint",
    "claim",
    "claim_statement",
    "complete",
    "complete_returning",
    "completion_landed",
    "configure",
    "configured_queues",
    "cutoff",
    "delete",
    "deletes",
    "enqueue",
    "error_entry",
    "expire",
    "fail",
    "failure_landed",
    "get_db",
    "history",
    "insert",
    "kick",
    "lease_seconds",
    "limited_queues",
    "new_claim_token",
    "not_migrated",
    "pause",
    "postpone",
    "progress",
    "prune",
    "prune_keys",
    "release",
    "release_claim",
    "reprioritise",
    "rescue",
    "resume",
    "retry",
    "save_logs",
    "seal",
    "settle",
    "settle_pending",
    "settle_running",
    "settle_workflows",
    "silent_workers",
    "touch",
    "unheld",
    "upkeep",
    "wake_due",
    "workflows",
]
