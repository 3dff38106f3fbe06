"""Outcomes in doubt: was a write whose reply was lost made?

A write may be committed although its client gets an error: the connection
breaks between the commit and the reply, or the server fails over after the
commit reached its standby. The holder writes the outcome again once the
database is back; the guarded write then matches no row, since the first one
finished the claim. Before reporting the claim lost, the holder asks here
whether the row shows its own write. Only a write that only this holder,
for this attempt, could have made counts (see each function).
"""

from __future__ import annotations

from typing import Any

from ..models import Job
from ..states import State
from . import sql as statements
from .batches import settle
from .columns import fields_named
from .guard import get_db
from .holder import WRITTEN

#: What an error entry is known by: its time, attempt, worker and class.
ERROR_IDENTITY = ("at", "attempt", "worker_id", "exception_class_path")


def completion_landed(job: Job, *, using: str | None = None) -> dict[str, Any] | None:
    """The fields a completion of ``job``'s attempt wrote (see
    ``sql.COMPLETED``), if one was made; None if none was.

    The proof: the row is done, at this attempt, and the last worker to claim
    it is the one that held this claim. Another worker's completion would
    follow a claim of its own (a later attempt, its own id); the rescuer and
    the console never complete a job.
    """
    db = get_db(using)
    row = _row(job, db, (*statements.COMPLETED, "attempts", "worker_ids", "batch"))
    if row is None or row["state"] != State.DONE or row["attempts"] != job.attempts:
        return None
    workers = row["worker_ids"]
    if not isinstance(workers, list) or not workers or workers[-1] != job.reserved_by:
        return None
    return _settled(row, db, statements.COMPLETED)


def failure_landed(
    job: Job, error: dict[str, Any], *, using: str | None = None
) -> dict[str, Any] | None:
    """The row's ``holder.WRITTEN`` fields if the failed attempt's write that
    appends ``error`` (a retry, a postponement or a burial) was made; None if
    it was not, or the row is gone.

    The proof: the row's errors hold this very entry, made once by the
    holder for this failure (its time, attempt, worker and class); nobody
    else writes it. The row may have moved on since (claimed again, say):
    what it holds now is returned.
    """
    db = get_db(using)
    row = _row(job, db, (*WRITTEN, "batch"))
    if row is None or not isinstance(row["errors"], list):
        return None
    wanted = _identity(error)
    if not any(_identity(entry) == wanted for entry in row["errors"]):
        return None
    return _settled(row, db, WRITTEN)


def _row(job: Job, db: str, names: tuple[str, ...]) -> dict[str, Any] | None:
    fields = fields_named(tuple(dict.fromkeys(names)))
    return (
        Job.objects.using(db)
        .filter(pk=job.pk)
        .values(*(field.attname for field in fields))
        .first()
    )


def _settled(row: dict[str, Any], db: str, names: tuple[str, ...]) -> dict[str, Any]:
    """``row``'s fields ``names``, once its batch is settled: the first try
    may have failed after its write, before settling it (settling twice is
    harmless)."""
    if row["batch_id"] is not None and row["state"] in (State.DONE, State.BURIED):
        settle([row["batch_id"]], using=db)
    return {name: row[name] for name in names}


def _identity(entry: Any) -> tuple | None:
    if not isinstance(entry, dict):
        return None
    return tuple(entry.get(key) for key in ERROR_IDENTITY)
