"""Completing batches: exactly one callback job once every member finished.

A batch completes when it is sealed and none of its jobs is ready or
reserved. The completion is one guarded UPDATE (``completed_at`` still empty,
no waiting member), so of any number of processes that see the last jobs
finish, exactly one wins and enqueues the callback, in the same transaction.
``settle`` runs after each write that may finish a member, once that write is
committed; the rescuer also settles sealed batches left incomplete, so that a
completion missed by a crash or two concurrent transactions still happens.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from ..models import Batch, Job
from ..states import UNFINISHED, State
from .enqueue import insert
from .guard import get_db


def seal(batch_id: int, *, using: str | None = None) -> None:
    """No more jobs join the batch; it completes once they have finished."""
    db = get_db(using)
    total = Job.objects.using(db).filter(batch_id=batch_id).count()
    Batch.objects.using(db).filter(pk=batch_id, sealed_at=None).update(
        sealed_at=timezone.now(), total=total
    )
    settle([batch_id], using=db)


def settle(batch_ids: Iterable[int], *, using: str | None = None) -> list[int]:
    """Complete the batches among ``batch_ids`` whose jobs have all finished.

    Returns the ids of the callback jobs it enqueued.
    """
    db = get_db(using)
    callbacks = []
    for batch_id in batch_ids:
        waiting = Job.objects.using(db).filter(
            batch_id=OuterRef("pk"), state__in=UNFINISHED
        )
        with transaction.atomic(using=db):
            won = (
                Batch.objects.using(db)
                .filter(pk=batch_id, completed_at=None, sealed_at__isnull=False)
                .exclude(Exists(waiting))
                .update(completed_at=timezone.now())
            )
            if won:
                callbacks.append(_enqueue_callback(batch_id, db))
    return callbacks


def settle_pending(*, backend: str = "default", using: str | None = None) -> list[int]:
    """Settle every sealed, incomplete batch (the rescuer's safety net)."""
    db = get_db(using)
    pending = Batch.objects.using(db).filter(
        backend=backend, completed_at=None, sealed_at__isnull=False
    )
    return settle(list(pending.values_list("pk", flat=True)), using=db)


def _enqueue_callback(batch_id: int, db: str) -> int:
    batch = Batch.objects.using(db).get(pk=batch_id)
    members = list(
        Job.objects.using(db).filter(batch_id=batch_id).values_list("pk", "state")
    )
    done = sum(1 for _, state in members if state == State.DONE)
    callback = batch.callback
    kwargs = {
        **callback["kwargs"],
        "batch_id": batch_id,
        "done": done,
        "failed": (batch.total or 0) - done,
        "job_ids": sorted(pk for pk, _ in members),
    }
    inserted = insert([(callback["args"], kwargs)], **callback["fields"], using=db)
    Batch.objects.using(db).filter(pk=batch_id).update(callback_job=inserted.ids[0])
    return inserted.ids[0]
