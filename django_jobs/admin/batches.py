"""Batches in the console: read-only, with their progress and callback job."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from .. import stats
from ..models import Batch
from .readonly import ReadOnlyAdmin


@admin.register(Batch)
class BatchAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "created_at", "progress", "completed_at", "callback"]
    list_filter = [("completed_at", admin.EmptyFieldListFilter)]
    ordering = ["-pk"]
    fields = [
        "backend",
        "created_at",
        "sealed_at",
        "progress",
        "completed_at",
        "callback",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(**stats.BATCH_COUNTS)

    @admin.display(description=_("progress"))
    def progress(self, batch):
        return batch_progress(self.admin_site.name, batch)

    @admin.display(description=_("callback job"))
    def callback(self, batch):
        if batch.callback_job_id is None:
            return "-"
        url = reverse(
            f"{self.admin_site.name}:django_jobs_job_change",
            args=[batch.callback_job_id],
        )
        return format_html('<a href="{}">#{}</a>', url, batch.callback_job_id)


def batch_progress(site: str, batch: Batch) -> str:
    """'7 of 10 finished (6 done, 1 failed)', linked to the batch's jobs.

    ``batch`` comes annotated with ``stats.BATCH_COUNTS``.
    """
    url = reverse(f"{site}:django_jobs_job_changelist")
    text = stats.describe_batch(stats.batch_summary(batch))
    return format_html(
        '<a href="{}?{}">{}</a>', url, urlencode({"batch__id__exact": batch.pk}), text
    )
