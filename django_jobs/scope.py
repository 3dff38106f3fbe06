"""What the code running now belongs to: the job that runs it, the batch
being filled around it.

Two context variables that the backend reads on every enqueue, so that a
job enqueued by a running job becomes its child and one enqueued inside
``with batch(...)`` joins that batch. They live apart from the modules that
set them (the worker's child, ``batches.batch``, the test runner), which all
import the backend.
"""

from __future__ import annotations

import contextvars

#: The id of the job this process is running, if any: jobs it enqueues are
#: its children.
current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_job", default=None
)

#: The batch that jobs enqueued now join (set by ``batches.batch()``).
current_batch: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_batch", default=None
)
