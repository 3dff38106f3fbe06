"""Workflows: jobs that wait for jobs, with a deadline for the whole.

.. code-block:: python

    from datetime import timedelta
    from django_jobs.workflows import after, workflow

    with workflow("nightly sync", deadline=timedelta(hours=4)):
        merchant = crawl.enqueue("merchant")
        adwords = crawl.enqueue("adwords")
        analytics = crawl.enqueue("analytics")
        with after(merchant=merchant, adwords=adwords, analytics=analytics):
            matched = match.enqueue()
        with after(matched):
            analyzed = analyze.enqueue()

Every job enqueued in ``workflow()`` joins it; every job enqueued in
``after()`` waits for the jobs it names (state ``waiting``) and reads their
results from ``context.upstream``. A job that a running step of a workflow
enqueues joins it too, and the jobs waiting for that step wait for it as
well (fan-out: a crawl that finds 500 pages). See docs/workflows.rst.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from .compat import TaskResult, TaskResultStatus, task_backends
from .exceptions import InvalidDependency
from .scope import After, current_after, current_step, current_workflow


@contextlib.contextmanager
def workflow(
    name: str,
    *,
    deadline: datetime | timedelta | None = None,
    backend: str = "default",
) -> Iterator[Any]:
    """Start a workflow; the jobs enqueued in the block join it.

    ``deadline`` (an aware datetime, or a timedelta from now) bounds the
    whole: each job expires then at the latest, and a workflow still running
    then fails ("missed its deadline at step ..."), its running jobs stopped.
    Yields the ``Workflow`` row. It can end only after the block: a step that
    finishes before the block has enqueued the next one does not end it.
    """
    from . import queue
    from .backend import JobsBackend

    jobs_backend = task_backends[backend]
    if not isinstance(jobs_backend, JobsBackend):
        raise TypeError(f"workflow(): TASKS[{backend!r}] is not a django_jobs backend.")
    if isinstance(deadline, timedelta):
        deadline = timezone.now() + deadline
    row = queue.workflows.start(
        name, backend=backend, deadline=deadline, using=jobs_backend.db
    )
    joined = current_workflow.set(row.pk)
    try:
        yield row
    finally:
        current_workflow.reset(joined)
        # Only now may it end: its first steps may have finished already.
        queue.workflows.seal(row.pk, using=jobs_backend.db)


@contextlib.contextmanager
def after(
    *jobs: TaskResult | int, anyway: bool = False, **named: TaskResult | int
) -> Iterator[None]:
    """The jobs enqueued in the block wait for ``jobs`` (and ``named`` ones).

    They run once every one of those has finished successfully; if one fails
    for good, they end too (buried, saying which), unless ``anyway``: then
    they run all the same (a step that reports or cleans up). A waiting job
    reads their results from ``context.upstream``, in this order, and by
    these names.
    """
    given = [("", job) for job in jobs] + list(named.items())
    if not given:
        raise InvalidDependency("after() needs at least one job to wait for.")
    ids = tuple(_job_id(job) for _, job in given)
    if len(set(ids)) != len(ids):
        raise InvalidDependency(f"after(): a job is named twice in {list(ids)}.")
    names = tuple(name for name, _ in given)
    backends = tuple(getattr(job, "backend", None) for _, job in given)
    waits = current_after.set(After(ids, names, anyway, backends))
    try:
        yield
    finally:
        current_after.reset(waits)


@contextlib.contextmanager
def detached() -> Iterator[None]:
    """Jobs enqueued in the block join no workflow and hold no step: a
    running step's notification, say, that its workflow should not wait for."""
    tokens = current_workflow.set(None), current_step.set(None), current_after.set(None)
    try:
        yield
    finally:
        current_after.reset(tokens[2])
        current_step.reset(tokens[1])
        current_workflow.reset(tokens[0])


def _job_id(job: TaskResult | int) -> int:
    if isinstance(job, int) and not isinstance(job, bool):
        return job
    if isinstance(job, TaskResult):
        try:
            return int(job.id)
        except ValueError:
            pass
    raise InvalidDependency(
        f"after() takes the TaskResult of a django_jobs job (or its id), got {job!r}."
    )


class Upstream(Sequence):
    """The results of the jobs a job waited for: ``context.upstream``.

    In the order ``after()`` gave them (then the jobs a step added, in the
    order they were enqueued), and by name: ``context.upstream["merchant"]``.
    Read with one query, the first time it is used.
    """

    def __init__(self, job_id: int, backend: str) -> None:
        self.job_id = job_id
        self.backend = backend
        self._loaded: list[tuple[str, TaskResult]] | None = None

    def _results(self) -> list[tuple[str, TaskResult]]:
        if self._loaded is None:
            self._loaded = _load(self.job_id, task_backends[self.backend])
        return self._loaded

    def __len__(self) -> int:
        return len(self._results())

    def __getitem__(self, key: int | str | slice) -> Any:
        if isinstance(key, str):
            for name, result in self._results():
                if name == key:
                    return result
            raise KeyError(f"no upstream job is named {key!r}")
        if isinstance(key, slice):
            return [result for _, result in self._results()[key]]
        return self._results()[key][1]

    @property
    def names(self) -> list[str]:
        """The names given to ``after()`` (those given by name)."""
        return [name for name, _ in self._results() if name]

    @property
    def return_values(self) -> list[Any]:
        """What each returned, in order (None for one that did not finish)."""
        return [
            result.return_value
            if result.status == TaskResultStatus.SUCCESSFUL
            else None
            for _, result in self._results()
        ]

    def __repr__(self) -> str:
        return f"<Upstream of job {self.job_id}>"


def _load(job_id: int, backend) -> list[tuple[str, TaskResult]]:
    from django.db.models import F

    from .models import Job

    rows = (
        Job.objects.using(backend.db)
        .filter(downstream_edges__downstream_id=job_id)
        .annotate(
            edge_name=F("downstream_edges__name"),
            edge_position=F("downstream_edges__position"),
        )
        .order_by("edge_position", "pk")
    )
    return [(row.edge_name, backend.result_for(row)) for row in rows]
