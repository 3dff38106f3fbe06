"""Batches: a group of jobs, and a callback that runs once they have all finished.

.. code-block:: python

    from django_jobs.batches import batch

    with transaction.atomic(), batch(report_ready, kwargs={"user_id": user.pk}):
        for image in images:
            resize.enqueue(image.pk)

Every job enqueued in the block joins the batch (whatever its task). When
the block ends the batch is sealed; once every job of it has finished (done,
or buried, or deleted), the callback task is enqueued exactly once, with the
keyword arguments given plus ``batch_id``, ``done``, ``failed`` (buried or
deleted) and ``job_ids``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from .compat import Task
from .scope import current_batch

#: The keyword arguments a callback receives on top of its own.
RESULT_KWARGS = ("batch_id", "done", "failed", "job_ids")


@contextlib.contextmanager
def batch(
    on_complete: Task,
    *,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """Group the jobs enqueued in the block; run ``on_complete`` when all finish.

    The callback is checked now (its arguments must fit its signature, with
    the result keywords added), so a mistake fails here rather than in a
    worker. Yields the ``Batch`` row.
    """
    from . import queue
    from .backend import JobsBackend
    from .models import Batch

    backend = on_complete.get_backend()
    if not isinstance(backend, JobsBackend):
        raise TypeError(
            f"batch(): the callback {on_complete.module_path!r} must use a "
            "django_jobs backend."
        )
    kwargs = dict(kwargs or {})
    reserved = sorted(set(kwargs) & set(RESULT_KWARGS))
    if reserved:
        raise TypeError(
            f"batch(): {', '.join(reserved)} are given to the callback by the "
            "batch; do not pass them."
        )
    backend.validate_task(on_complete)
    sample = {"batch_id": 0, "done": 0, "failed": 0, "job_ids": []}
    args, kwargs_json = backend.prepare_call(on_complete, args, {**kwargs, **sample})
    fields = backend.job_columns(on_complete)
    callback = {
        "fields": {
            key: value
            for key, value in fields.items()
            # The callback joins no batch and no workflow of the block's.
            if key not in ("run_at", "expires_at", "batch", "workflow", "after", "step")
        }
        | {"limit_keys": backend.limit_keys(on_complete, [(args, kwargs_json)])},
        "args": args,
        "kwargs": {key: kwargs_json[key] for key in kwargs},
    }
    row = Batch.objects.using(backend.db).create(
        backend=backend.alias, callback=callback
    )
    joined = current_batch.set(row.pk)
    try:
        yield row
    finally:
        current_batch.reset(joined)
        queue.seal(row.pk, using=backend.db)
