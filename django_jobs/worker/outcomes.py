"""Recording what happened to each attempt, through django_jobs.queue only.

Successes are batched: every outcome that arrived in one turn of the loop is
completed in one statement. Failures are rarer and each takes its own
guarded write. After every write the supervisor sends ``task_finished`` and
logs one line that names the job, its task and the attempt.

A write that failed because the database went away is made again once it is
back; it may have been committed all the same (the reply was lost), and the
second write then finds the claim finished. If the row shows its own first
write (``queue.completion_landed``, ``queue.failure_landed``), the outcome is
logged as if the reply had come, once, instead of as a lost claim.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

from django.db import DatabaseError

from .. import queue
from ..attempts import Kind, Next, follows
from ..backend import JobsBackend
from ..compat import Task, task_finished, task_started
from ..exceptions import (
    ClaimLost,
    JobDoesNotExist,
    JobError,
    OutcomeNotStored,
    class_path,
)
from ..hooks import Outcome
from ..logging import log_fields
from ..models import Job
from ..states import State
from . import usage
from .failures import Failure
from .import_grace import import_failing_for, next_try_in
from .options import WorkerOptions
from .outage import DatabaseHealth, first_line, transient
from .outcome_hooks import OutcomeHooks
from .protocol import Progress

logger = logging.getLogger("django_jobs.worker")

#: Said of an outcome found written by a try whose reply was lost.
IN_DOUBT = " (recorded by an earlier write whose reply was lost)"

PROGRESS_EVERY = 0.5  # seconds between two progress writes for one job
#: One record per attempt's events; a logger of its own, so that busy sites
#: can turn the per-job lines down without losing the worker's own messages.
job_logger = logging.getLogger("django_jobs.job")


def log_job(level: int, job: Job, message: str, *args: Any, **kwargs: Any) -> None:
    """Log ``message`` about ``job``, with its id, task and attempt attached."""
    job_logger.log(
        level,
        "job %s %s (attempt %s/%s): " + message,
        job.pk,
        job.task_path,
        job.attempts,
        job.max_attempts,
        *args,
        extra=log_fields(job),
        **kwargs,
    )


class Recorder:
    def __init__(self, options: WorkerOptions, health: DatabaseHealth) -> None:
        self.backend: JobsBackend = options.backend
        self.db = options.db
        self.health = health
        config = options.config
        self.backoff = (config.RETRY_BACKOFF, config.RETRY_BACKOFF_MAX)
        self.import_grace = config.IMPORT_GRACE
        self.successes: list[tuple[Job, Any, float]] = []
        self.failures: list[Failure] = []
        #: The error entry of each pending failure, by job: made once, so
        #: that a write made again writes (and can find) the same entry.
        self.errors: dict[int, dict[str, Any]] = {}
        self.progresses: dict[int, tuple[Job, Progress]] = {}
        self.logs: dict[int, tuple[str, bool]] = {}
        #: What each attempt used (usage.entry), written with its outcome.
        self.usage: dict[int, dict[str, Any]] = {}
        self.progress_written: dict[int, float] = {}
        #: The Task of each started job, resolved once for both its signals.
        self.tasks: dict[int, Task | None] = {}
        hooks = options.backend.hooks
        self.hooks = OutcomeHooks(hooks) if hooks.outcome else None

    @property
    def pending(self) -> bool:
        return bool(self.successes or self.failures)

    @property
    def pending_count(self) -> int:
        return len(self.successes) + len(self.failures)

    # What the children report

    def keep_logs(self, job: Job, text: str, truncated: bool) -> None:
        """The output of the job's attempt, to store with its outcome."""
        self.logs[job.pk] = (text, truncated)

    def keep_usage(self, job: Job, **used: Any) -> None:
        """What the job's attempt used (see usage.entry), to store with it."""
        if any(value is not None for value in used.values()):
            self.usage[job.pk] = usage.entry(job, **used)

    def progress(self, job: Job, message: Progress) -> None:
        """Keep the latest progress report of a job, to write it soon."""
        self.progresses[job.pk] = (job, message)

    def job_started(self, job: Job) -> None:
        self.tasks[job.pk] = self._signal(task_started, job)

    def succeeded(self, job: Job, value: Any, elapsed: float) -> None:
        self.successes.append((job, value, elapsed))
        self.forget_progress(job)

    def forget_progress(self, job: Job) -> None:
        self.progresses.pop(job.pk, None)
        self.progress_written.pop(job.pk, None)

    def failed(self, failure: Failure) -> None:
        self.failures.append(failure)

    # Writing it down

    def flush(self) -> bool:
        """Write every pending outcome; False if the database is unavailable.

        Only an unavailable database (see ``transient``) is waited for: the
        outcomes stay pending and are written once it is back. A write the
        database refuses for what it holds is never retried: the job is
        buried with an error that says what could not be stored, and why.
        """
        if not (self.pending or self.progresses):
            return True
        try:
            self._flush_progress()
            self._flush_successes()
            while self.failures:
                self._record_failure(self.failures[0])
                self.errors.pop(self.failures.pop(0).job.pk, None)
        except DatabaseError as exc:
            if not transient(exc):
                raise
            self.health.failed(exc, "record outcomes")
            return False
        self.health.ok()
        return True

    def release(self, job: Job, why: str = "worker stopping") -> None:
        """Give a job back unfinished (shutdown, or a lane child killed for
        another job); the attempt does not count."""
        self.tasks.pop(job.pk, None)
        self.usage.pop(job.pk, None)
        try:
            queue.release(job.pk, token=job.claim_token, using=self.db)
        except (JobError, DatabaseError) as exc:
            # Still reserved: rescued once its lease runs out.
            log_job(logging.ERROR, job, "could not be released: %s", first_line(exc))
            return
        log_job(logging.INFO, job, "released unfinished (%s)", why)

    def _flush_progress(self) -> None:
        """Write progress reports, at most one per job every PROGRESS_EVERY s."""
        now = time.monotonic()
        for job_id, (job, report) in list(self.progresses.items()):
            if now - self.progress_written.get(job_id, 0.0) < PROGRESS_EVERY:
                continue
            del self.progresses[job_id]
            self.progress_written[job_id] = now
            # A job that finished or was lost meanwhile has nothing to show.
            with contextlib.suppress(JobError), refused(job, "progress report"):
                queue.progress(
                    job_id,
                    token=job.claim_token,
                    done=report.done,
                    total=report.total,
                    message=report.message,
                    using=self.db,
                )

    def _save_logs(self, job: Job) -> None:
        """Write the output of the job's attempt; kept for the next try while
        the database is away (the write raises then)."""
        kept = self.logs.get(job.pk)
        if kept is None:
            return
        # Lost: its outcome says so. Refused: the outcome still counts.
        with contextlib.suppress(JobError), refused(job, "output"):
            queue.save_logs(
                job.pk,
                token=job.claim_token,
                attempt=job.attempts,
                text=kept[0],
                truncated=kept[1],
                using=self.db,
            )
        del self.logs[job.pk]

    def _flush_successes(self) -> None:
        if not self.successes:
            return
        for job, _, _ in self.successes:
            self._save_logs(job)
        written, refusals = self._complete(self.successes)
        landed = {  # written by an earlier try whose reply was lost
            job.pk: row
            for job, _, _ in self.successes
            if job.pk not in written and job.pk not in refusals
            if (row := queue.completion_landed(job, using=self.db)) is not None
        }
        batch, self.successes = self.successes, []
        for job, value, elapsed in batch:
            task, _ = self.tasks.pop(job.pk, None), self.usage.pop(job.pk, None)
            if job.pk in refusals:
                self._not_stored(job, "return value", refusals[job.pk])
            elif (row := written.get(job.pk, landed.get(job.pk))) is not None:
                apply(job, row, return_value=value)
                log_job(
                    logging.INFO, job, "done in %.1f ms%s", elapsed * 1000,
                    IN_DOUBT if job.pk in landed else "",
                )  # fmt: skip
                self._signal(task_finished, job, task)
                self._hooks(job, "done")
            else:
                log_job(
                    logging.ERROR,
                    job,
                    "finished, but %s",
                    ClaimLost(job.pk, "complete"),
                )

    def _complete(
        self, successes: list[tuple[Job, Any, float]]
    ) -> tuple[dict[int, dict], dict[int, DatabaseError]]:
        """Complete jobs in one statement: what was written to each (a job
        missing lost its claim), and the return values the database refused."""
        outcomes = [
            (job.pk, job.claim_token, value, self.usage.get(job.pk))
            for job, value, _ in successes
        ]
        try:
            return queue.complete_returning(outcomes, using=self.db, prepare=True), {}
        except DatabaseError as exc:
            if transient(exc):
                raise
            if len(outcomes) == 1:
                return {}, {outcomes[0][0]: exc}
        written: dict[int, dict] = {}
        refusals: dict[int, DatabaseError] = {}
        for one in outcomes:  # the database refused one of them: find which
            try:
                written.update(
                    queue.complete_returning([one], using=self.db, prepare=True)
                )
            except DatabaseError as exc:
                if transient(exc):
                    raise
                refusals[one[0]] = exc
        return written, refusals

    def _not_stored(self, job: Job, what: str, exc: DatabaseError) -> None:
        """The database refused an outcome: bury the job, saying why."""
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        message = (
            f"{OutcomeNotStored.__name__}: the database refused to store this "
            f"attempt's {what} ({type(exc).__name__}: {reason}); the job is "
            "buried rather than retried, since its work may have been done.\n"
        )
        error = queue.attempt_error(job, class_path(OutcomeNotStored), message)
        log_job(logging.ERROR, job, "%s", message.strip())
        # Refused even that: its reservation runs out and the rescuer takes
        # it back; nothing here waits for it.
        with contextlib.suppress(JobError), refused(job, "burial"):
            queue.bury(job.pk, token=job.claim_token, error=error, using=self.db)

    def _record_failure(self, failure: Failure) -> None:
        job = failure.job
        self.forget_progress(job)
        task, used = self.tasks.pop(job.pk, None), self.usage.pop(job.pk, None)
        self._save_logs(job)
        error = self.errors.setdefault(
            job.pk,
            queue.attempt_error(job, failure.exception_class_path, failure.traceback),
        )
        try:
            result, written = self._decide(failure, error, used)
        except (ClaimLost, JobDoesNotExist) as exc:
            landed = self._failure_landed(failure, error, exc)
            if landed is None:
                log_job(logging.ERROR, job, "%s, but %s", failure.describe(), exc)
                return
            result, written = landed
        except DatabaseError as exc:
            if transient(exc):
                raise
            self._not_stored(job, "error", exc)
            return
        log_job(
            logging.WARNING, job, "%s: %s; %s", failure.describe(), failure.summary(),
            result,
        )  # fmt: skip
        apply(job, written)
        self._hooks(job, str(result).split(" ", 1)[0], failure)
        if failure.kind.attempted:  # a retry's Task is built anew: its new run_after
            retried = str(result).startswith(queue.Then.RETRIED)
            self._signal(task_finished, job, None if retried else task)

    def _failure_landed(
        self, failure: Failure, error: dict[str, Any], refused: JobError
    ) -> tuple[str, dict] | None:
        """What became of a failure whose write found the claim gone, if an
        earlier try whose reply was lost wrote it: words for the log and the
        row's fields; None if it was not written (the claim was lost)."""
        if isinstance(refused, JobDoesNotExist):
            # Gone: what the write did if it was to delete the job (queue.fail
            # decides that, for the kinds _decide gives it).
            counted = self._follows(failure) is Next.RETRY
            if not (counted and queue.deletes(failure.job)):
                return None
            return queue.Then.DELETED + IN_DOUBT, {}
        row = queue.failure_landed(failure.job, error, using=self.db)
        if row is None:
            return None
        if row["state"] == State.BURIED:
            return queue.Then.BURIED + IN_DOUBT, row
        if failure.kind is Kind.NOT_IMPORTABLE:
            return "to be tried again, the attempt not counted" + IN_DOUBT, row
        return queue.Then.RETRIED + IN_DOUBT, row

    def _decide(
        self, failure: Failure, error: dict[str, Any], used: dict | None
    ) -> tuple[str, dict]:
        """Write what comes after ``failure`` (with what it ``used``): words
        for the log, and what was written to the row."""
        job, waited = failure.job, import_failing_for(failure.job)
        held = {"error": error, "usage": used, "using": self.db}
        match self._follows(failure):
            case Next.RETRY:
                failed = queue.fail(job, backoff=self.backoff, **held)
                return failed.then, failed.written
            case Next.WAIT_FOR_DEPLOY:
                delay = next_try_in(job, self.import_grace, waited)
                written = queue.postpone(
                    job.pk, token=job.claim_token, delay=delay, **held
                )
                return f"tried again in {delay:.0f} s, the attempt not counted", written
        written = queue.bury_held(job.pk, token=job.claim_token, **held)
        if failure.kind is Kind.NOT_IMPORTABLE:
            grace = f"IMPORT_GRACE is {self.import_grace:g} s"
            return f"buried: not importable for {waited:.0f} s ({grace})", written
        return queue.Then.BURIED, written

    def _follows(self, failure: Failure) -> Next:
        over = import_failing_for(failure.job) >= self.import_grace
        return follows(failure.kind, import_grace_over=over)

    def _hooks(self, job: Job, then: str, failure: Failure | None = None) -> None:
        """Hand what followed the attempt to the on_outcome hooks."""
        if self.hooks is None:
            return
        if then not in ("done", "retried", "buried", "deleted"):
            then = "postponed"  # a task not importable yet: tried again
        self.hooks.submit(
            Outcome(
                job_id=job.pk,
                task_path=job.task_path,
                queue=job.queue,
                backend=job.backend,
                attempt=job.attempts,
                max_attempts=job.max_attempts,
                then=then,
                failure=failure.kind.value if failure else None,
                error=self.errors.get(job.pk) if failure else None,
                trace_context=getattr(job, "trace_context", None) or None,
                traceparent=getattr(job, "run_traceparent", None),
            )
        )

    def _signal(self, signal, job: Job, task: Task | None = None) -> Task | None:
        """Send a django.tasks signal for ``job``, as the backend's class;
        its Task (resolved here unless given), or None if it has none."""
        try:
            task = task if task is not None else self.backend.task_for(job)
            result = self.backend.result_for(job, task)
        except Exception:
            logger.debug("no %s signal for job %s", signal, job.pk, exc_info=True)
            return None
        signal.send(type(self.backend), task_result=result)
        return task


@contextlib.contextmanager
def refused(job: Job, what: str) -> Iterator[None]:
    """Log and swallow a write the database refuses for what it holds."""
    try:
        yield
    except DatabaseError as exc:
        if transient(exc):
            raise
        log_job(logging.ERROR, job, "the database refused its %s: %s", what, exc)


def apply(job: Job, written: dict[str, Any], **more: Any) -> None:
    """Our copy of ``job``, as the guarded write left the row (RETURNING)."""
    for name, value in {**written, **more}.items():
        setattr(job, name, value)
