"""What the code running now belongs to: the job that runs it, the batch
being filled around it, the workflow and what new jobs wait for.

Context variables that the backend reads on every enqueue, so that a job
enqueued by a running job becomes its child, one enqueued inside ``with
batch(...)`` joins that batch, and one enqueued inside ``with workflow()``
or ``with after()`` joins that workflow or waits for those jobs. They live
apart from the modules that set them (the worker's child, ``batches.batch``,
``workflows``, the test runner), which all import the backend.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

#: The id of the job this process is running, if any: jobs it enqueues are
#: its children.
current_job: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_job", default=None
)

#: The batch that jobs enqueued now join (set by ``batches.batch()``).
current_batch: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_batch", default=None
)


@dataclass(frozen=True, slots=True)
class After:
    """The jobs that jobs enqueued now wait for (``workflows.after``)."""

    ids: tuple[int, ...]
    #: The name each is read by in the waiting job's context ("" for none).
    names: tuple[str, ...]
    #: Run even if one of them fails (a "finally" step).
    anyway: bool = False
    #: The backend each ``TaskResult`` named (None for a bare id): a job
    #: waits only for jobs of its own backend, in its own database.
    backends: tuple[str | None, ...] = ()


#: The workflow that jobs enqueued now join (``workflows.workflow()``, or the
#: workflow of the job running now).
current_workflow: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_workflow", default=None
)

#: What jobs enqueued now wait for (set by ``workflows.after()``).
current_after: contextvars.ContextVar[After | None] = contextvars.ContextVar(
    "django_jobs_current_after", default=None
)

#: The running step of a workflow: jobs it enqueues hold the jobs that wait
#: for it (fan-out), so that a step is over when what it started is.
current_step: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "django_jobs_current_step", default=None
)


@contextlib.contextmanager
def running_job(job_id: int, workflow: int | None = None) -> Iterator[None]:
    """While job ``job_id`` runs: the jobs it enqueues are its children and
    join no batch; in a workflow they join it and hold the jobs that wait
    for this one; they wait for nothing an outer ``after()`` named."""
    tokens = [
        (current_job, current_job.set(job_id)),
        (current_batch, current_batch.set(None)),
        (current_workflow, current_workflow.set(workflow)),
        (current_step, current_step.set(job_id if workflow else None)),
        (current_after, current_after.set(None)),
    ]
    try:
        yield
    finally:
        for variable, token in reversed(tokens):
            variable.reset(token)
