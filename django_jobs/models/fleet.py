"""The fleet and its settings: workers, the duties' lease, queues, schedules."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..validation import PRIORITY_MAX, PRIORITY_MIN


class Worker(models.Model):
    """A running ``runworker`` supervisor, kept alive by its heartbeats.

    The row exists while the worker runs: it is created at start, updated
    every few seconds and deleted on a clean exit. A row whose heartbeat is
    stale belongs to a worker presumed dead; the rescuer takes its jobs back.
    """

    id = models.CharField(_("id"), max_length=64, primary_key=True)
    backend = models.CharField(_("backend"), max_length=100, default="default")
    hostname = models.CharField(_("host"), max_length=255)
    pid = models.PositiveIntegerField(_("pid"))
    queues = models.JSONField(
        _("queues"), default=list, blank=True, help_text=_("Empty means all queues.")
    )
    #: Queues it leaves alone although ``queues`` is empty: the async lane's
    #: (OPTIONS['ASYNC_QUEUES']), which only a worker naming them runs; a
    #: new job of theirs does not wake it (see django_jobs.queue.wake).
    skipped_queues = models.JSONField(
        _("queues skipped"), default=list, blank=True, db_default=[]
    )
    #: Its children now (the jobs it may run at once); between
    #: ``min_concurrency`` and ``max_concurrency`` (``--concurrency MIN:MAX``),
    #: both equal to it for a worker of fixed size.
    concurrency = models.PositiveIntegerField(_("concurrency"))
    min_concurrency = models.PositiveIntegerField(
        _("min concurrency"), null=True, blank=True
    )
    max_concurrency = models.PositiveIntegerField(
        _("max concurrency"), null=True, blank=True
    )
    #: Database connections it may hold at its current size (the supervisor's,
    #: its listener's, two per child slot): what ``CONNECTION_BUDGET`` adds up
    #: over the live workers. NULL: a worker older than this column.
    connections = models.PositiveIntegerField(
        _("database connections"), null=True, blank=True
    )
    jobs_in_hand = models.PositiveIntegerField(_("jobs in hand"), default=0)
    #: How many more jobs it would take now, as of its last claim or
    #: heartbeat: a new job wakes workers with room, not every worker
    #: (see django_jobs.queue.wake). NULL: a worker older than this column,
    #: which listens to every notification.
    room = models.PositiveIntegerField(_("room"), null=True, blank=True)
    #: The server pid of its LISTEN session (PostgreSQL), written when the
    #: listener connects: a new job wakes no worker whose session has ended
    #: (see django_jobs.queue.wake). NULL: none recorded (wakes then go by
    #: room and heartbeat alone).
    listener_pid = models.PositiveIntegerField(
        _("listener's server pid"), null=True, blank=True
    )
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    last_heartbeat = models.DateTimeField(_("last heartbeat"), default=timezone.now)

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")

    def __str__(self) -> str:
        return f"{self.hostname}:{self.pid}"


class Lease(models.Model):
    """Which worker runs the fleet's duties for a backend, and until when.

    The rescuer, the scheduler, the pruner and the look for due jobs need
    one worker of a fleet, not all of them: the worker whose heartbeat last
    renewed the lease runs them. A lease that is not renewed (its worker
    died or stalls) expires, and the next worker to heartbeat takes it.
    """

    name = models.CharField(_("backend"), max_length=100, primary_key=True)
    holder = models.CharField(_("worker"), max_length=64, blank=True, default="")
    expires_at = models.DateTimeField(_("expires at"), default=timezone.now)

    class Meta:
        verbose_name = _("lease")
        verbose_name_plural = _("leases")

    def __str__(self) -> str:
        return f"{self.name}: {self.holder or '-'}"


class Queue(models.Model):
    """Settings of one queue that every worker obeys.

    A queue exists whether or not it has a row: rows are created when a
    queue is first paused or configured. Workers do not claim from a paused
    queue (jobs keep arriving and wait), never run more than
    ``max_concurrency`` of its jobs at once across all workers, and start at
    most ``rate_limit`` of its jobs per second. ``key_concurrency`` and
    ``key_rate_limit`` (per ``key_rate_period`` seconds) hold the same way for
    each key of its jobs (``Job.limit_key``).
    """

    backend = models.CharField(_("backend"), max_length=100, default="default")
    name = models.CharField(_("name"), max_length=100)
    paused = models.BooleanField(_("paused"), default=False)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True)
    max_concurrency = models.PositiveIntegerField(
        _("max concurrency"),
        null=True,
        blank=True,
        help_text=_("Jobs of this queue running at once, across all workers."),
    )
    rate_limit = models.FloatField(
        _("rate limit"),
        null=True,
        blank=True,
        help_text=_("Jobs of this queue started per second, at most."),
    )
    # The rate limit's token bucket, kept by the claim that spends it.
    rate_tokens = models.FloatField(default=0)
    rate_refilled_at = models.DateTimeField(null=True, blank=True)
    # Limits per key (docs/limits.rst): the same limits, for each value of the
    # jobs' ``limit_key`` (see QueueKey).
    key_concurrency = models.PositiveIntegerField(
        _("concurrency per key"),
        null=True,
        blank=True,
        help_text=_("Jobs of one key running at once, across all workers."),
    )
    key_rate_limit = models.PositiveIntegerField(
        _("starts per key"),
        null=True,
        blank=True,
        help_text=_("Jobs of one key started per window, at most."),
    )
    key_rate_period = models.PositiveIntegerField(
        _("window (seconds)"),
        null=True,
        blank=True,
        help_text=_("The rate window: 1, 60, 3600 or 86400 seconds."),
    )

    class Meta:
        verbose_name = _("queue")
        verbose_name_plural = _("queues")
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "name"], name="django_jobs_queue_unique_name"
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def keyed(self) -> bool:
        """Whether the queue has limits per key."""
        return self.key_concurrency is not None or self.key_rate_limit is not None


class Schedule(models.Model):
    """A recurring job: a task enqueued at every tick of a cron expression.

    Schedules declared in settings are written here when a worker starts (the
    settings win, except for ``enabled``, which people may turn off here);
    others can be added in the admin. The worker that holds the fleet's
    lease (see Lease) enqueues due ticks, and the unique (schedule, tick)
    constraint on jobs keeps one job per tick.
    """

    backend = models.CharField(_("backend"), max_length=100, default="default")
    name = models.CharField(_("name"), max_length=100)
    task_path = models.CharField(_("task"), max_length=255)
    cron = models.CharField(_("cron expression"), max_length=100)
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    args = models.JSONField(_("arguments"), default=list, blank=True)
    kwargs = models.JSONField(_("keyword arguments"), default=dict, blank=True)
    queue = models.CharField(_("queue"), max_length=100, blank=True, default="")
    priority = models.SmallIntegerField(_("priority"), null=True, blank=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    from_settings = models.BooleanField(_("declared in settings"), default=False)
    #: Every tick up to this time was enqueued (or skipped as too old).
    last_tick = models.DateTimeField(_("last tick"), null=True, blank=True)
    next_tick = models.DateTimeField(_("next tick"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "name"], name="django_jobs_schedule_unique_name"
            ),
            models.CheckConstraint(
                condition=Q(priority__isnull=True)
                | Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="django_jobs_schedule_priority_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name
