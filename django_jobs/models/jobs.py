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

from ..conf import ON_FAILURE_CHOICES
from ..fields import ReadableDateTimeField, ReadableJSONField
from ..states import DELAYED, State
from ..validation import PRIORITY_MAX, PRIORITY_MIN
from .partial import answered_by_migration


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
    # Limits per key (docs/limits.rst): the value of the task's ``limit_key``
    # argument ("" means no key).
    limit_key = models.CharField(
        _("limit key"), max_length=255, blank=True, default="", db_default=""
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
    #: The task's own resource limits (the worker's and OPTIONS' apply when
    #: these are null): bytes of resident memory, seconds of CPU time.
    max_memory = models.PositiveBigIntegerField(_("max memory"), null=True, blank=True)
    max_cpu_seconds = models.FloatField(_("max CPU seconds"), null=True, blank=True)
    #: What each attempt used: [{"attempt", "max_rss" (bytes), "cpu", "wall"
    #: (seconds)}]; written with the attempt's outcome (worker/usage.py).
    usage = ReadableJSONField(_("usage"), default=list, blank=True, db_default=[])
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

    # Workflows (see models/groups.py and queue/workflows.py).
    workflow = models.ForeignKey(
        "Workflow",
        verbose_name=_("workflow"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="jobs",
        db_constraint=False,
        db_index=False,  # see django_jobs_job_workflow
    )
    #: Its upstream jobs that have not finished: it waits while this is > 0.
    waiting_for = models.PositiveIntegerField(_("waiting for"), default=0, db_default=0)
    #: Jobs that wait for it: only then does its end release or end others.
    downstream_count = models.PositiveIntegerField(
        _("jobs waiting for it"), default=0, db_default=0
    )
    #: It runs once its upstream jobs have finished, even if one failed.
    runs_anyway = models.BooleanField(_("runs anyway"), default=False, db_default=False)
    #: The upstream job whose failure ended it: retrying that one brings it back.
    blocked_by = models.ForeignKey(
        "self",
        verbose_name=_("ended by the failure of"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_constraint=False,
        db_index=False,  # see django_jobs_job_blocked_by
    )
    #: The W3C trace context of the enqueue ({"traceparent", "tracestate",
    #: "baggage"}), when a span was current (docs/observability.rst).
    trace_context = ReadableJSONField(_("trace context"), null=True, blank=True)

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
            # A worker's claim of named queues: each queue's jobs in claim
            # order, so that one queue's backlog is not walked to find
            # another's jobs.
            models.Index(
                fields=["queue", "-priority", "run_at", "id"],
                condition=Q(state="ready"),
                name="django_jobs_job_queue_claim",
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
            models.Index(
                fields=["workflow", "state"],
                condition=Q(workflow__isnull=False),
                name="django_jobs_job_workflow",
            ),
            # The rescuer's look at the waiting jobs (queue.workflows.repair).
            models.Index(
                fields=["backend"],
                condition=Q(state="waiting"),
                name="django_jobs_job_waiting",
            ),
            # Limits per key (queue.keys): a key's running jobs, its ready
            # jobs in claim order, and its earliest ready job. Partial: jobs
            # without a key pay nothing for them.
            models.Index(
                fields=["queue", "limit_key"],
                condition=Q(state="reserved") & ~Q(limit_key=""),
                name="django_jobs_job_key_running",
            ),
            models.Index(
                fields=["queue", "limit_key", "-priority", "run_at", "id"],
                condition=Q(state="ready") & ~Q(limit_key=""),
                name="django_jobs_job_key_claim",
            ),
            models.Index(
                fields=["queue", "limit_key", "run_at"],
                condition=Q(state="ready") & ~Q(limit_key=""),
                name="django_jobs_job_key_next",
            ),
            models.Index(
                fields=["blocked_by"],
                condition=Q(blocked_by__isnull=False),
                name="django_jobs_job_blocked_by",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "unique_key"],
                condition=Q(state__in=["waiting", "ready", "reserved"])
                & ~Q(unique_key=""),
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

    @classmethod
    def check(cls, **kwargs):
        # MariaDB's partial indexes: see models/partial.py.
        return answered_by_migration(super().check(**kwargs))

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
