"""The guarded write every operation is made of, and where jobs live."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import router, transaction
from django.db.models import Q

from .. import states
from ..exceptions import (
    ClaimLost,
    InvalidTransition,
    JobDoesNotExist,
)
from ..models import Job
from ..states import State
from . import mysql
from .dependencies import end_downstream, wait_again
from .sql import update_returning
from .workflow_rows import reopen, settle_workflows

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
    worker holding them (but for ``states.OPEN`` operations). The console
    narrows its selections with this, so that it only offers the queue what
    the queue would accept.
    """
    sources = states.sources(operation)
    if operation not in states.OPEN:
        sources -= {State.RESERVED}
    return Q(state__in=sources)


@dataclass(frozen=True, slots=True)
class Changed:
    """What one guarded write did."""

    count: int
    #: The written values of the fields asked for (``returning``), per row.
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: The batches of the jobs it finished: settle them (``batches.settle``).
    batches: frozenset[int] = frozenset()
    #: The workflows of the jobs it changed (settled by ``change`` itself).
    workflows: frozenset[int] = frozenset()


def change(
    operation: str,
    job_ids: JobIds,
    *,
    token: str | None = None,
    using: str | None = None,
    values: dict[str, Any] | None = None,
    unless_moved: Q | None = None,
    returning: Sequence[str] = (),
) -> Changed:
    """Apply ``operation`` as one guarded UPDATE (or DELETE).

    The guard is the set of states the operation may start from; a reserved
    job additionally needs its claim token, which only its holder knows.
    ``unless_moved`` adds a condition that must still hold when the write
    happens (the rescuer's "still lost"); if it no longer does, a single
    job's write raises ClaimLost, as for a lost token. ``returning`` names
    the fields whose written values come back, in ``Changed.rows``.
    """
    db = get_db(using)
    single = isinstance(job_ids, int)
    ids = [job_ids] if single else list(job_ids)
    rows = Job.objects.using(db).filter(_guard(operation, token), pk__in=ids)
    if unless_moved is not None:
        rows = rows.filter(unless_moved)
    if operation in states.FINISHING or operation == "kick":
        connection = transaction.get_connection(db)

        def write() -> Changed:
            return _write(operation, rows, values, returning, db)

        changed = mysql.atomic(connection, write)  # with what it does to a workflow
        settle_workflows(changed.workflows, using=db)
    else:
        changed = _write(operation, rows, values, returning, db)
    if single and not changed.count:
        if unless_moved is not None:
            raise ClaimLost(job_ids, operation)
        refusal(operation, job_ids, token, db)
    return changed


def _write(
    operation: str,
    rows,
    values: dict[str, Any] | None,
    returning: Sequence[str],
    db: str,
) -> Changed:
    finishing = operation in states.FINISHING
    new_state = states.target(operation)
    if new_state is None:
        batches = frozenset(batches_of(rows)) if finishing else frozenset()
        # An unfinished job deleted will never succeed: what waits for it
        # ends first (its edges go with it).
        doomed = rows.filter(downstream_count__gt=0, state__in=states.UNFINISHED)
        ended = [
            end_downstream({"id": pk}, db) for pk in doomed.values_list("pk", flat=True)
        ]
        # Only the ids: deleting makes Django collect the rows (for the jobs
        # and batches that point at them), and a job's columns can be large.
        count = rows.only("pk").delete()[0]
        return _changed(count, [], batches, [row for rows_ in ended for row in rows_])
    if not (returning or finishing or operation == "kick"):
        return Changed(rows.update(state=new_state, **(values or {})))
    extra = [name for name in _LINKS if name not in returning]
    written = update_returning(
        rows, {"state": new_state, **(values or {})}, [*returning, *extra]
    )
    linked = [{name: row[_ATTNAMES[name]] for name in _LINKS} for row in written]
    for row in written:
        for name in extra:
            del row[_ATTNAMES[name]]
    batches = {row["batch"] for row in linked} if finishing else set()
    ended = []
    if operation == "kick":
        wait_again([row["id"] for row in linked], db)
        reopen({row["workflow"] for row in linked} - {None}, using=db)
    elif finishing:
        for row in linked:
            if row["downstream_count"]:
                ended.extend(end_downstream({"id": row["id"]}, db))
    return _changed(len(written), written, batches, ended, linked)


#: What ``_write`` reads of each row it changes, besides what was asked: what
#: else the change touches (a batch, a workflow, jobs that wait for it).
_LINKS = ("id", "batch", "workflow", "downstream_count")
_ATTNAMES = {name: Job._meta.get_field(name).attname for name in _LINKS}


def _changed(
    count: int,
    written: list[dict[str, Any]],
    batches: Iterable[int | None],
    ended: list[dict[str, Any]],
    linked: list[dict[str, Any]] = (),
) -> Changed:
    """What a write did, with the batches and workflows that the jobs it
    finished (and those it ended down the graph) belong to."""
    batches = {*batches, *(row["batch_id"] for row in ended)} - {None}
    workflows = {row["workflow"] for row in linked} | {
        row["workflow_id"] for row in ended
    }
    workflows.discard(None)
    return Changed(count, written, frozenset(batches), frozenset(workflows))


def _guard(operation: str, token: str | None) -> Q:
    if token is None:
        return unheld(operation)
    return Q(state__in=states.sources(operation), claim_token=token)


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
