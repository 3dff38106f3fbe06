"""Run django-jobs jobs inside your tests, in the test's own process.

.. code-block:: python

    from django_jobs.testing import run_jobs, run_on_enqueue

    def test_signup_sends_a_welcome(client):
        client.post("/signup/", {...})    # enqueues send_welcome
        (result,) = run_jobs()            # runs it, and what it enqueues
        assert result.status == "SUCCESSFUL"

    with run_on_enqueue():                # "eager": each job runs as it is enqueued
        client.post("/signup/", {...})

Jobs are claimed and finished through ``django_jobs.queue`` as a worker
would, so their rows, results and signals are a worker's. See the "Testing
your tasks" page of the documentation.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..compat import TaskResult
from .eager import run_on_enqueue
from .runner import TEST_WORKER_ID, Runner, Selection, TaskLike

__all__ = ["TEST_WORKER_ID", "run_jobs", "run_on_enqueue"]


def run_jobs(
    *,
    tasks: Iterable[TaskLike] | None = None,
    queues: Iterable[str] | None = None,
    backend: str | None = None,
    delayed: bool = False,
    raise_errors: bool = True,
    limit: int | None = None,
) -> list[TaskResult]:
    """Run the jobs that are due now, and those they enqueue, until none is left.

    ``tasks`` (Task objects or dotted paths) and ``queues`` narrow the run;
    ``backend`` is a ``TASKS`` alias (default: every django-jobs backend).
    Jobs run one at a time, in claim order (priority, then ``run_at``).

    ``delayed``: also run the jobs waiting for their ``run_after`` or for a
    retry's backoff, at once (they are kicked first).

    ``raise_errors`` (the default): when a job raises, its failed attempt is
    recorded as a worker would (retried later, or buried when it has no
    attempts left), then the exception is raised here and the run stops.
    With ``raise_errors=False`` failures are only recorded and the run goes
    on; with ``delayed=True`` too, a failing job is retried until it is
    buried.

    ``limit``: stop after that many jobs. Returns the ``TaskResult`` of each
    job that ran, in the order they first ran, as they ended.
    """
    runner = Runner(
        Selection.of(tasks, queues, backend),
        delayed=delayed,
        raise_errors=raise_errors,
    )
    return runner.run_all(limit)
