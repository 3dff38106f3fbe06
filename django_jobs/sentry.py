"""A hook that reports jobs' exceptions to Sentry (docs/observability.rst).

Add ``"django_jobs.sentry.ReportFinalFailures"`` (once per job, when its last
attempt fails) or ``"django_jobs.sentry.ReportEveryAttempt"`` to
``OPTIONS['HOOKS']``, and initialise ``sentry_sdk`` in the settings as usual.

It reports from the job's own process, where the exception and its frames
are: tagged with the job's id, task, queue and attempt, and flushed before
the process ends. A failure that process never saw (it was killed past its
ttr or its limits or by a signal, or its worker died and the rescuer took
the job back) is reported by the worker's supervisor (``on_outcome``), as a
message with the error the job was given and the same tags.

Nothing else reports a job's exception: the worker logs a failed attempt
at WARNING, below the level at which Sentry's logging integration makes an
event; Django's Tasks framework logs a failed job at
ERROR on its own logger (``django.tasks``), which this hook tells Sentry's
logging integration to leave alone (``ignore_logger``), or each failure
would be reported twice; the task's exception never reaches Django's
request handling, so Sentry's Django integration does not see it; and a
task that reports its own exception and re-raises it is not reported twice
(Sentry's dedupe integration drops a second report of one object).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterator
from typing import Any

from .attempts import Kind
from .compat import TASKS_MODULE
from .hooks import LOST, Outcome, Run

#: Failures that are the job's own, not the worker's (a task not deployed
#: yet is not an error of the job's code).
REPORTED = frozenset({Kind.RAISED, Kind.UNSTORABLE, Kind.CRASHED})
#: Failures only the supervisor knows of (``Outcome.failure``): the job's
#: process was stopped or gone before it could report. A job that expired
#: unstarted ran none of its code: it is not reported.
UNSEEN_BY_THE_JOB = frozenset({Kind.TIMED_OUT.value, Kind.OVER_LIMIT.value, LOST})


class ReportFinalFailures:
    """Report a job's exception once: when the attempt that fails is its last."""

    every_attempt = False
    #: Seconds to wait for Sentry's transport before the process goes on.
    flush_timeout = 2.0

    def __init__(self) -> None:
        from sentry_sdk.integrations.logging import ignore_logger

        ignore_logger(TASKS_MODULE)  # its FAILED line: this hook's report

    def around_run(self, run: Run) -> Generator[None, Any, None]:
        ended = yield
        if ended is None or ended.ok or ended.kind not in REPORTED:
            return
        last = run.attempt >= run.max_attempts or ended.kind is Kind.UNSTORABLE
        if not (self.every_attempt or last):
            return
        report(run, ended.exception, self.flush_timeout)

    def on_outcome(self, outcome: Outcome) -> None:
        if not unseen_by_the_job(outcome):
            return
        if self.every_attempt or outcome.final:
            report_outcome(outcome, self.flush_timeout)


class ReportEveryAttempt(ReportFinalFailures):
    """Report each failed attempt's exception."""

    every_attempt = True


def report(run: Run, exc: BaseException | None, flush_timeout: float) -> None:
    import sentry_sdk

    with job_scope(run.job_id, run.task.module_path, run.queue, run.attempt) as scope:
        scope.set_context(
            "job",
            {
                "id": run.job_id,
                "attempt": run.attempt,
                "max_attempts": run.max_attempts,
            },
        )
        sentry_sdk.capture_exception(exc)
    sentry_sdk.flush(timeout=flush_timeout)  # the process may end right after


def unseen_by_the_job(outcome: Outcome) -> bool:
    """Whether the job's own process could not report this failure. A crash
    by a signal (a segfault, the kernel's OOM killer) it could not; one by
    an exit code went through ``os._exit``, where the child ended its run's
    hooks as a crash (``hook_calls.close_open_runs``) and reported it."""
    if outcome.failure == Kind.CRASHED.value:
        error = str((outcome.error or {}).get("traceback", ""))
        return "killed by signal" in error  # worker/process.py's words
    return outcome.failure in UNSEEN_BY_THE_JOB


def report_outcome(outcome: Outcome, flush_timeout: float) -> None:
    """Report a failure the job's own process could not: the last line of
    the error it was given, at level error."""
    import sentry_sdk

    lines = str((outcome.error or {}).get("traceback", "")).strip().splitlines()
    why = lines[-1] if lines else outcome.failure
    with job_scope(
        outcome.job_id, outcome.task_path, outcome.queue, outcome.attempt
    ) as scope:
        scope.set_tag("failure", outcome.failure)
        sentry_sdk.capture_message(
            f"job {outcome.job_id} {outcome.task_path} {outcome.then}: {why}",
            level="error",
        )
    sentry_sdk.flush(timeout=flush_timeout)


@contextlib.contextmanager
def job_scope(job_id: int, task: str, queue: str, attempt: int) -> Iterator[Any]:
    """A scope of its own, tagged with the job's id, task, queue and attempt."""
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job_id", job_id)
        scope.set_tag("task", task)
        scope.set_tag("queue", queue)
        scope.set_tag("attempt", attempt)
        scope.fingerprint = ["django_jobs", task, "{{ default }}"]
        yield scope
