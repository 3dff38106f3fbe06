"""The worker list: who is running, where, on which queues, and who went quiet.

Rows belong to the workers: each creates its own, heartbeats it and removes
it on a clean exit; the rescuer removes those of dead workers. So the list
is read-only and nothing here deletes a row (a live worker's jobs would be
rescued from under it). A worker whose last heartbeat is older than its
backend's ``WORKER_TIMEOUT`` is flagged stale: presumed dead, its jobs are
about to be rescued.
"""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils import formats, timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from ..durations import age
from ..models import Worker
from ..states import State
from ..stats import is_stale
from .display import state_badge
from .readonly import ReadOnlyAdmin


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    list_display = [
        "hostname",
        "pid",
        "queue_names",
        "concurrency",
        "jobs",
        "started_at",
        "heartbeat",
        "status",
        "id",
    ]
    list_filter = ["backend", "hostname"]
    search_fields = ["=id", "hostname"]
    ordering = ["hostname", "pid"]
    fields = [
        "id",
        "backend",
        "hostname",
        "pid",
        "queue_names",
        "concurrency",
        "jobs",
        "started_at",
        "heartbeat",
        "status",
    ]
    readonly_fields = fields

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": _("Workers"), **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    @admin.display(description=_("queues"))
    def queue_names(self, worker):
        return ", ".join(worker.queues) or _("all")

    @admin.display(description=_("jobs in hand"))
    def jobs(self, worker):
        query = urlencode({"state": State.RESERVED, "reserved_by": worker.pk})
        url = reverse(f"{self.admin_site.name}:django_jobs_job_changelist")
        return format_html('<a href="{}?{}">{}</a>', url, query, worker.jobs_in_hand)

    @admin.display(description=_("last heartbeat"))
    def heartbeat(self, worker):
        return format_html(
            '{} <span class="jobs-note">({})</span>',
            formats.time_format(timezone.localtime(worker.last_heartbeat), "H:i:s"),
            _("%s ago") % age(worker.last_heartbeat),
        )

    @admin.display(description=_("status"))
    def status(self, worker):
        return state_badge("stale" if is_stale(worker) else "live")
