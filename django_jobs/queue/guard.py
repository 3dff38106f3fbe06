"""The guarded write every operation is made of, and where jobs live."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.db import router
from django.db.models import Q

from .. import states
from ..exceptions import (
    ClaimLost,
    InvalidTransition,
    JobDoesNotExist,
)
from ..models import Job
from ..states import State

JobIds = int | Iterable[int]


def get_db(using: str | None = None) -> str:
    """The database alias for job writes: explicit, or as the routers say."""
    return using or router.db_for_write(Job)


# The guard


def unreserved() -> dict[str, Any]:
    return {"reserved_until": None, "reserved_by": "", "claim_token": ""}


def unheld(operation: str) -> Q:
    """The jobs ``operation`` may change without a claim token.

    Everything it may start from except reserved jobs, which belong to the
    worker holding them. The console narrows its selections with this, so
    that it only offers the queue what the queue would accept.
    """
    return Q(state__in=states.sources(operation) - {State.RESERVED})


def change(
    operation: str,
    job_ids: JobIds,
    *,
    token: str | None = None,
    using: str | None = None,
    values: dict[str, Any] | None = None,
    unless_moved: Q | None = None,
) -> int:
    """Apply ``operation`` as one guarded UPDATE (or DELETE).

    The guard is the set of states the operation may start from; a reserved
    job additionally needs its claim token, which only its holder knows.
    ``unless_moved`` adds a condition that must still hold when the write
    happens (the rescuer's "still lost"); if it no longer does, a single
    job's write raises ClaimLost, as for a lost token.
    """
    db = get_db(using)
    single = isinstance(job_ids, int)
    ids = [job_ids] if single else list(job_ids)
    if token is None:
        guard = unheld(operation)
    else:
        guard = Q(state__in=states.sources(operation), claim_token=token)
    rows = Job.objects.using(db).filter(guard, pk__in=ids)
    if unless_moved is not None:
        rows = rows.filter(unless_moved)
    batches = batches_of(rows) if operation in states.FINISHING else []
    new_state = states.target(operation)
    if new_state is None:
        # Only the ids: deleting makes Django collect the rows (for the jobs
        # and batches that point at them), and a job's columns can be large.
        changed = rows.only("pk").delete()[0]
    else:
        changed = rows.update(state=new_state, **(values or {}))
    if single and not changed:
        if unless_moved is not None:
            raise ClaimLost(job_ids, operation)
        refusal(operation, job_ids, token, db)
    if batches and changed:
        from .batches import settle

        settle(batches, using=db)
    return changed


def batches_of(rows) -> list[int]:
    """The batches that some of ``rows`` belong to (read before they change)."""
    return list(rows.exclude(batch=None).values_list("batch_id", flat=True).distinct())


def refusal(operation: str, job_id: int, token: str | None, db: str):
    """Raise the reason why a guarded write on one job matched nothing."""
    row = Job.objects.using(db).filter(pk=job_id).values("state", "claim_token").first()
    if row is None:
        raise JobDoesNotExist(job_id)
    if token is not None and (
        row["state"] != State.RESERVED or row["claim_token"] != token
    ):
        raise ClaimLost(job_id, operation)
    raise InvalidTransition(job_id, operation, row["state"])
