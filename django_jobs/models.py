"""The job table.

A job is a row. Its state changes only through ``django_jobs.queue``; the model
itself holds no behaviour beyond read-only conveniences, so that every write
goes through one guarded code path.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .conf import ON_FAILURE_CHOICES
from .fields import ReadableDateTimeField, ReadableJSONField
from .states import DELAYED, State
from .validation import PRIORITY_MAX, PRIORITY_MIN


class JobQuerySet(models.QuerySet):
    def ready(self, now=None):
        """Jobs a worker may claim now (ready and due)."""
        return self.filter(state=State.READY, run_at__lte=now or timezone.now())

    def delayed(self, now=None):
        return self.filter(state=State.READY, run_at__gt=now or timezone.now())


class Job(models.Model):
    backend = models.CharField(
        _("backend"), max_length=100, default="default", editable=False
    )
    queue = models.CharField(_("queue"), max_length=100, default="default")
    task_path = models.CharField(_("task"), max_length=255, editable=False)
    args = ReadableJSONField(_("arguments"), default=list, blank=True, editable=False)
    kwargs = ReadableJSONField(
        _("keyword arguments"), default=dict, blank=True, editable=False
    )
    state = models.CharField(
        _("state"), max_length=10, choices=State.choices, default=State.READY
    )
    priority = models.SmallIntegerField(_("priority"), default=0)
    run_at = ReadableDateTimeField(_("run at"), default=timezone.now)
    ttr = models.PositiveIntegerField(
        _("time to run"), default=300, help_text=_("Seconds, renewed by a touch.")
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    max_attempts = models.PositiveIntegerField(_("max attempts"), default=3)
    on_failure = models.CharField(
        _("on failure"),
        max_length=10,
        default="bury",
        choices=[(choice, _(choice)) for choice in ON_FAILURE_CHOICES],
    )
    enqueued_at = ReadableDateTimeField(_("enqueued at"), default=timezone.now)
    started_at = ReadableDateTimeField(_("started at"), null=True, blank=True)
    last_attempted_at = ReadableDateTimeField(
        _("last attempted at"), null=True, blank=True
    )
    finished_at = ReadableDateTimeField(_("finished at"), null=True, blank=True)
    reserved_until = ReadableDateTimeField(_("reserved until"), null=True, blank=True)
    reserved_by = models.CharField(
        _("reserved by"), max_length=64, blank=True, default=""
    )
    # A new random value for every claim: the fencing token that every write
    # after the claim must show (see django_jobs.queue).
    claim_token = models.CharField(max_length=32, blank=True, default="")
    worker_ids = ReadableJSONField(_("worker ids"), default=list, blank=True)
    errors = ReadableJSONField(_("errors"), default=list, blank=True)
    return_value = ReadableJSONField(_("return value"), null=True, blank=True)
    # Set by a person (the admin's cancel action) on a reserved job; its
    # worker stops the job and buries it as cancelled.
    cancel_requested_at = ReadableDateTimeField(
        _("cancel requested at"), null=True, blank=True
    )
    # Unique jobs: while a job with this key is ready or reserved, enqueuing
    # another returns it instead ("" means not unique).
    unique_key = models.CharField(
        _("unique key"), max_length=255, blank=True, default="", db_default=""
    )
    # Deadline: a job not started by then is never started.
    expires_at = ReadableDateTimeField(_("expires at"), null=True, blank=True)
    # The schedule tick this job is, if any: one job per (schedule, tick).
    schedule = models.ForeignKey(
        "Schedule",
        verbose_name=_("schedule"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_constraint=False,
        db_index=False,  # django_jobs_job_one_per_tick starts with it
    )
    scheduled_for = ReadableDateTimeField(_("scheduled for"), null=True, blank=True)
    # What the job saved while it ran (see django_jobs.context.JobContext).
    checkpoint = ReadableJSONField(_("checkpoint"), null=True, blank=True)
    progress = ReadableJSONField(_("progress"), null=True, blank=True)
    #: The tail of each attempt's output: [{"attempt", "text", "truncated"}].
    logs = ReadableJSONField(_("logs"), default=list, blank=True, db_default=[])
    # Jobs enqueued by a running job are its children; a batch groups jobs
    # whose completion runs a callback.
    parent = models.ForeignKey(
        "self",
        verbose_name=_("parent"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="children",
        db_constraint=False,
        db_index=False,  # see django_jobs_job_parent
    )
    batch = models.ForeignKey(
        "Batch",
        verbose_name=_("batch"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_constraint=False,
        db_index=False,  # see django_jobs_job_batch
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        indexes = [
            # The claim walks this index in order and stops after N rows, so
            # its cost does not grow with the number of finished jobs.
            models.Index(
                fields=["-priority", "run_at", "id"],
                condition=Q(state="ready"),
                name="django_jobs_job_claim",
            ),
            models.Index(
                fields=["reserved_until"],
                condition=Q(state="reserved"),
                name="django_jobs_job_reserved",
            ),
            # The console's filters, newest first, over millions of rows.
            models.Index(fields=["queue", "-id"], name="django_jobs_job_queue"),
            models.Index(fields=["task_path", "-id"], name="django_jobs_job_task"),
            models.Index(fields=["enqueued_at"], name="django_jobs_job_enqueued"),
            models.Index(
                fields=["-id"],
                condition=~Q(errors=[]),
                name="django_jobs_job_failed",
            ),
            # Finished jobs by age, for retention and the dashboard. Partial,
            # so that enqueues and claims do not pay for it.
            models.Index(
                fields=["state", "finished_at"],
                condition=Q(state__in=["done", "buried"]),
                name="django_jobs_job_finished",
            ),
            # Few jobs have a parent or a batch: partial indexes keep every
            # other enqueue from writing a NULL entry into each of them.
            models.Index(
                fields=["parent"],
                condition=Q(parent__isnull=False),
                name="django_jobs_job_parent",
            ),
            models.Index(
                fields=["batch"],
                condition=Q(batch__isnull=False),
                name="django_jobs_job_batch",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "unique_key"],
                condition=Q(state__in=["ready", "reserved"]) & ~Q(unique_key=""),
                name="django_jobs_job_unique_while_waiting",
            ),
            models.UniqueConstraint(
                fields=["schedule", "scheduled_for"],
                condition=Q(schedule__isnull=False),
                name="django_jobs_job_one_per_tick",
            ),
            models.CheckConstraint(
                condition=Q(priority__gte=PRIORITY_MIN, priority__lte=PRIORITY_MAX),
                name="django_jobs_job_priority_range",
            ),
            models.CheckConstraint(
                condition=Q(state__in=State.values),
                name="django_jobs_job_state_valid",
            ),
            models.CheckConstraint(
                condition=Q(ttr__gte=1) & Q(max_attempts__gte=1),
                name="django_jobs_job_limits_positive",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.task_name} #{self.pk}"

    @property
    def task_name(self) -> str:
        return self.task_path.rpartition(".")[2]

    @property
    def display_state(self) -> str:
        """The state as people count it: a ready job due later is delayed."""
        if (
            self.state == State.READY
            and self.run_at is not None  # unreadable: see django_jobs.fields
            and self.run_at > timezone.now()
        ):
            return DELAYED
        return self.state


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
    concurrency = models.PositiveIntegerField(_("concurrency"))
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
    most ``rate_limit`` of its jobs per second.
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


class Batch(models.Model):
    """A group of jobs whose completion enqueues one callback job.

    The batch is sealed when the ``with batch(...)`` block that filled it
    ends; once sealed and none of its jobs is ready or reserved, exactly one
    process wins the guarded update of ``completed_at`` and enqueues the
    callback, in the same transaction.
    """

    backend = models.CharField(_("backend"), max_length=100, default="default")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    #: The callback's job, ready to insert: its columns, args and kwargs.
    callback = models.JSONField(_("callback"), default=dict)
    total = models.PositiveIntegerField(_("jobs"), null=True, blank=True)
    sealed_at = models.DateTimeField(_("sealed at"), null=True, blank=True)
    completed_at = models.DateTimeField(_("completed at"), null=True, blank=True)
    callback_job = models.ForeignKey(
        Job,
        verbose_name=_("callback job"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
    )

    class Meta:
        verbose_name = _("batch")
        verbose_name_plural = _("batches")

    def __str__(self) -> str:
        return f"batch #{self.pk}"
