"""Jobs that belong together: batches (a callback after a group) and
workflows (jobs that wait for jobs).

A workflow's state is kept in step with its jobs by ``django_jobs.queue``;
so are the ``Dependency`` edges' effects: a job waits (``State.WAITING``)
while any of its upstream jobs has not finished.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .jobs import Job
from .partial import answered_by_migration


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


#: The longest workflow name (a clear error names it; see queue.workflows).
WORKFLOW_NAME_MAX = 200


class Workflow(models.Model):
    """Jobs that run in an order: each waits for the jobs it was enqueued
    ``after`` (its upstream), all of them within an optional deadline.

    Its state is derived from its jobs and kept in step by
    ``django_jobs.queue``: running while any job has not finished; then
    succeeded (every job done), or failed (a job failed for good, or the
    deadline passed), or cancelled.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("running")
        SUCCEEDED = "succeeded", _("succeeded")
        FAILED = "failed", _("failed")
        CANCELLED = "cancelled", _("cancelled")

    backend = models.CharField(_("backend"), max_length=100, default="default")
    name = models.CharField(_("name"), max_length=WORKFLOW_NAME_MAX)
    state = models.CharField(
        _("state"), max_length=20, choices=Status.choices, default=Status.RUNNING
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    #: Every job of it ends by then: each expires then at the latest.
    deadline = models.DateTimeField(_("deadline"), null=True, blank=True)
    #: Why it failed or was cancelled, in words ("missed its deadline at ...").
    reason = models.TextField(_("reason"), blank=True, default="")
    #: When the block that started it ended: only then can it end (its first
    #: steps may finish before the block has enqueued the last ones).
    sealed_at = models.DateTimeField(_("sealed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("workflow")
        verbose_name_plural = _("workflows")
        indexes = [
            models.Index(fields=["state", "-id"], name="django_jobs_workflow_state"),
            models.Index(fields=["name", "-id"], name="django_jobs_workflow_name"),
            models.Index(
                fields=["deadline"],
                condition=Q(state="running", deadline__isnull=False),
                name="django_jobs_workflow_due",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"

    @classmethod
    def check(cls, **kwargs):
        # MariaDB's partial indexes: see models/partial.py.
        return answered_by_migration(super().check(**kwargs))


class Dependency(models.Model):
    """An edge of a workflow: ``downstream`` waits for ``upstream``.

    ``name`` and ``position`` are how the downstream job reads its upstream
    jobs' results (``context.upstream``): by the name given to ``after()``,
    or in the order given.
    """

    upstream = models.ForeignKey(
        Job,
        verbose_name=_("upstream job"),
        on_delete=models.CASCADE,
        related_name="downstream_edges",
        db_constraint=False,  # a key-share lock would hide the job from claims
    )
    downstream = models.ForeignKey(
        Job,
        verbose_name=_("downstream job"),
        on_delete=models.CASCADE,
        related_name="upstream_edges",
        db_constraint=False,
        db_index=False,  # see django_jobs_dep_downstream
    )
    name = models.CharField(_("name"), max_length=100, blank=True, default="")
    position = models.PositiveIntegerField(_("position"), default=0)

    class Meta:
        verbose_name = _("dependency")
        verbose_name_plural = _("dependencies")
        indexes = [
            models.Index(
                fields=["downstream", "position"],
                name="django_jobs_dep_downstream",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["upstream", "downstream"], name="django_jobs_dependency_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.upstream_id} -> {self.downstream_id}"
