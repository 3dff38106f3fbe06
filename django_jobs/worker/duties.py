"""Maintenance duties: rescue, schedules, pruning, stray jobs.

Each duty has an interval and a ``run_once()`` that a test can call. The
duties a fleet needs once (``fleet_wide``) run only in the worker that holds
the fleet's lease (see fleet.py); the guarded writes in ``django_jobs.queue``
still make it harmless when two workers run one at once, as they may for a
moment when the lease changes hands.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.utils import timezone

from .. import queue, schedules, stats
from ..compat import task_backends
from ..hooks import DEADLINE, LOST, WORKFLOW_DEADLINE
from ..queue.duties import expire_jobs, forget_silent_workers, rescue_jobs
from .duty import Duty
from .options import WorkerOptions
from .outcome_hooks import OutcomeHooks
from .upkeep import HistoryDrops

logger = logging.getLogger("django_jobs.worker")


class Rescuer(Duty):
    """Takes back the jobs of dead workers and of expired reservations.

    A worker is presumed dead when its heartbeat is older than
    ``WORKER_TIMEOUT``; the jobs it claimed before its last heartbeat are
    taken back (see ``queue.rescue``). An expired reservation is one whose
    deadline passed more than ``KILL_GRACE`` plus a heartbeat ago: until then
    its own worker, if alive, is still stopping the job and will record the
    timeout itself. A reservation whose worker has no row at all waits for
    its deadline like any other.

    No child reports what it decides (jobs taken back, expired, ended by
    their workflow's deadline): it hands each to the worker's on_outcome
    hooks itself (``outcomes``, the Recorder's thread, from supervisor.py).
    """

    fleet_wide = True

    def __init__(
        self, options: WorkerOptions, *, outcomes: OutcomeHooks | None = None
    ) -> None:
        super().__init__()
        config = options.config
        self.backend = options.backend.alias
        self.db = options.db
        self.interval = config.RESCUE_INTERVAL
        self.worker_timeout = config.WORKER_TIMEOUT
        self.expiry_margin = config.KILL_GRACE + config.HEARTBEAT_INTERVAL
        self.backoff = (config.RETRY_BACKOFF, config.RETRY_BACKOFF_MAX)
        #: The worker's on_outcome hooks (the Recorder's thread), told of
        #: the outcomes decided here: no child reports them.
        self.outcomes = outcomes

    def run_once(self) -> dict[str, int]:
        now = timezone.now()
        silent_before = now - timedelta(seconds=self.worker_timeout)
        rescued = rescue_jobs(
            backend=self.backend,
            silent_before=silent_before,
            expired_before=now - timedelta(seconds=self.expiry_margin),
            backoff=self.backoff,
            using=self.db,
        )
        self.tell(rescued.jobs, LOST)
        counts = rescued.counts()
        # Only now, and only if they are still silent: a worker that came
        # back meanwhile keeps its row (and the jobs it claimed since).
        dead = forget_silent_workers(self.backend, silent_before, using=self.db)
        if any(counts.values()) or dead:
            logger.warning(
                "rescued jobs of dead workers and expired reservations: "
                "%d retried, %d buried, %d deleted; %d silent worker(s) removed",
                counts["retried"],
                counts["buried"],
                counts["deleted"],
                dead,
            )
        self.expire()
        missed, ended = queue.workflows.miss_deadlines(
            backend=self.backend, using=self.db
        )
        if missed:
            logger.warning("%d workflow(s) missed their deadline", len(missed))
        self.tell(ended.jobs, WORKFLOW_DEADLINE)
        # Batches and workflows whose completion a crash or a concurrent
        # commit left behind; waiting jobs whose count a race left off.
        queue.settle_pending(backend=self.backend, using=self.db)
        if repaired := queue.workflows.repair(backend=self.backend, using=self.db):
            logger.warning("%d waiting job(s) counted their upstream again", repaired)
        queue.settle_running(backend=self.backend, using=self.db)
        return counts

    def expire(self) -> None:
        """Bury (or delete) the jobs past their deadline unstarted; hand each
        to the on_outcome hooks (their thread: outcome_hooks.py)."""
        expired = expire_jobs(backend=self.backend, using=self.db)
        if not expired.count:
            return
        logger.info("%d job(s) passed their deadline unstarted", expired.count)
        self.tell(expired.jobs, DEADLINE)

    def tell(self, jobs: list[dict], failure: str) -> None:
        """Hand the outcomes decided here to the on_outcome hooks' thread."""
        if jobs and self.outcomes is not None:
            self.outcomes.decided(jobs, failure)


class Scheduler(Duty):
    """Enqueues the due ticks of the cron schedules (see django_jobs.schedules)."""

    fleet_wide = True

    def __init__(self, options: WorkerOptions) -> None:
        super().__init__()
        self.backend = options.backend
        self.db = options.db
        self.interval = options.config.SCHEDULE_INTERVAL

    def run_once(self) -> int:
        return schedules.enqueue_due(self.backend)


class Pruner(Duty):
    """Deletes finished jobs older than their retention, in short batches."""

    fleet_wide = True

    def __init__(self, options: WorkerOptions, *, background: bool = False) -> None:
        super().__init__()
        config = options.config
        self.backend = options.backend.alias
        self.db = options.db
        self.interval = config.PRUNE_INTERVAL
        self.done_retention = config.DONE_RETENTION
        self.buried_retention = config.BURIED_RETENTION
        self.history = queue.history.available(self.db)
        self.warned_short = False
        #: The worker's pruner drops detached days in a thread of its own
        #: (``HistoryDrops``); called by hand, the pruner drops them itself.
        self.drops = HistoryDrops(self.db) if background else None

    def run_once(self) -> dict[str, int]:
        now = timezone.now()
        by_day = self.history and self.keep_history(now)
        counts = queue.prune(
            done_before=queue.cutoff(now, self.done_retention),
            buried_before=queue.cutoff(now, self.buried_retention),
            backend=self.backend,
            hot_only=by_day,
            using=self.db,
        )
        if any(counts.values()):
            logger.info(
                "pruned %d done and %d buried job(s)", counts["done"], counts["buried"]
            )
        retention = max(self.done_retention or 0, self.buried_retention or 0)
        if self.done_retention is not None and self.buried_retention is not None:
            before = queue.cutoff(now, retention)
            if pruned := queue.workflows.prune(
                before, backend=self.backend, using=self.db
            ):
                logger.info("pruned %d finished workflow(s) with no job left", pruned)
        if keys := queue.prune_keys(backend=self.backend, now=now, using=self.db):
            logger.info("pruned %d idle key(s) of limits per key", keys)
        return counts

    def keep_history(self, now: datetime) -> bool:
        """The history's upkeep: make the coming days' tables and drop those
        past retention. Whether done jobs are pruned a day at a time: not
        when the retention is shorter than a day (their rows are deleted)."""
        history = queue.history
        history.prepare(now, using=self.db)
        retention = history_retention(self.db)
        if retention is None:
            return True
        kept_from = history.day_of(now - timedelta(seconds=retention))
        if self.drops is None:
            if dropped := history.drop(kept_from, using=self.db):
                logger.info("dropped the history of %s", ", ".join(dropped))
        else:
            if detached := history.detach(kept_from, using=self.db):
                logger.info("detached the history of %s", ", ".join(detached))
            self.drops.start(kept_from)
        by_day = retention >= history.PARTITION.total_seconds()
        if not by_day and not self.warned_short:
            self.warned_short = True
            logger.warning(
                "DONE_RETENTION (%g s) is shorter than a day of history: done"
                " jobs are deleted row by row, not a day table at a time",
                retention,
            )
        return by_day


def history_retention(db: str) -> float | None:
    """How long the history on ``db`` is kept: the longest ``DONE_RETENTION``
    of the backends that share it (None: one keeps done jobs forever). A
    backend's workers may reach it by another alias (``WORKER_DATABASE``)."""
    from ..backend import JobsBackend

    kept = [
        each.config.DONE_RETENTION
        for each in task_backends.all()
        if isinstance(each, JobsBackend)
        and db in (each.db, each.config.WORKER_DATABASE)
    ]
    return None if None in kept or not kept else max(kept)


class History(Duty):
    """Moves done jobs out of the hot table into the history (PostgreSQL;
    see ``queue.history``), ``HISTORY_DELAY`` seconds after they finish."""

    fleet_wide = True

    def __init__(self, options: WorkerOptions) -> None:
        super().__init__()
        self.db = options.db
        self.delay = options.config.HISTORY_DELAY
        self.interval = max(0.5, self.delay / 2)
        self.enabled = queue.history.available(self.db)

    def due_at(self) -> float | None:
        return self.next_run if self.enabled else None

    def run_once(self) -> int:
        if not self.enabled:
            return 0
        before = timezone.now() - timedelta(seconds=self.delay)
        moved = queue.history.move(before=before, using=self.db)
        if moved >= queue.history.BATCH:  # a backlog: the next batch at once,
            self.next_run = 0.0  # after the loop's other work (one at a time)
        return moved


class StrayJobs(Duty):
    """Warns of stray jobs (``stats.stray_backends``) once per alias, so that
    they do not wait in silence. Looked for at start and then rarely, as it
    reads every ready row.
    """

    fleet_wide = True

    def __init__(self, options: WorkerOptions) -> None:
        super().__init__()
        self.db = options.db
        self.interval = options.config.PRUNE_INTERVAL
        self.warned: set[str] = set()

    def run_once(self) -> dict[str, int]:
        strays = stats.stray_backends(using=self.db)
        for alias in sorted(set(strays) - self.warned):
            logger.warning(
                "%d job(s) wait for backend %r, which is not in the TASKS setting: "
                "no worker will run them (see `manage.py jobs stats`)",
                strays[alias],
                alias,
            )
        self.warned |= set(strays)
        return strays


def apply_queue_limits(options: WorkerOptions) -> None:
    """Write ``OPTIONS["QUEUE_LIMITS"]`` to the queue table (the settings win)."""
    for name, limits in options.config.QUEUE_LIMITS.items():
        queue.configure(
            name,
            backend=options.backend.alias,
            max_concurrency=limits.get("max_concurrency"),
            rate_limit=limits.get("rate_limit"),
            key_concurrency=limits.get("key_concurrency"),
            key_rate_limit=limits.get("key_rate_limit"),
            using=options.db,
        )
