"""The keys of the queues with limits per key (docs/limits.rst).

One row per (backend, queue, key) that ever had a ready job: where the key
stands in the claim's round robin, and how many of its jobs started in the
current rate window. Rows are written by a database trigger on the job
table (a job of the key became ready; one of its jobs stopped running) and
by the keyed claim (``django_jobs.queue.keys``), never by hand.
"""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from .partial import answered_by_migration


class QueueKey(models.Model):
    backend = models.CharField(_("backend"), max_length=100)
    queue = models.CharField(_("queue"), max_length=100)
    key = models.CharField(_("key"), max_length=255)
    #: The earliest run_at of the key's ready jobs, as far as known (a job
    #: may have gone since: the claim then finds nothing and recomputes it).
    #: NULL: no ready job.
    next_at = models.DateTimeField(_("next job at"), null=True, blank=True)
    #: When a claim last served the key (or found it at its concurrency).
    served_at = models.DateTimeField(_("served at"), null=True, blank=True)
    #: Its rate window is spent until then.
    held_until = models.DateTimeField(_("held until"), null=True, blank=True)
    #: It was at its concurrency; a job of it that stops running lifts this
    #: (the trigger), or the time does.
    parked_until = models.DateTimeField(_("parked until"), null=True, blank=True)
    #: Its turn in the round robin: the latest of the four above; NULL while
    #: it has no ready job. The claim serves keys by due_at, then key.
    due_at = models.DateTimeField(_("turn at"), null=True, blank=True)
    window_start = models.DateTimeField(_("window start"), null=True, blank=True)
    window_count = models.PositiveIntegerField(_("starts in window"), default=0)

    class Meta:
        verbose_name = _("queue key")
        verbose_name_plural = _("queue keys")
        constraints = [
            models.UniqueConstraint(
                fields=["backend", "queue", "key"],
                name="django_jobs_queuekey_unique",
            )
        ]
        indexes = [
            models.Index(
                fields=["backend", "queue", "due_at", "key"],
                condition=Q(due_at__isnull=False),
                name="django_jobs_queuekey_turn",
            )
        ]

    def __str__(self) -> str:
        return f"{self.queue}: {self.key}"

    @classmethod
    def check(cls, **kwargs):
        # MariaDB's partial indexes: see models/partial.py.
        return answered_by_migration(super().check(**kwargs))
