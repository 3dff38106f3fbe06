"""The queue dashboard, where "Queues" leads in the admin, and pause/resume.

The page answers "what is stuck, failing or slow?" at a glance: per queue,
how many jobs wait for other jobs (workflows), wait for a worker, run and
lie buried, how many finished and failed in the last hour, how long the
oldest ready job has waited, whether the queue is paused; a chart of the
last hour; and the running workflows, with the time left before their
deadlines. Every number links to the job list, filtered (numbers past
``counting.CAP`` are estimates, marked "≈": see ``counts``); each queue's
limits link to its limits page (``queue_limits``: edit them, and see the
busiest keys of a queue with limits per key).

Seeing it needs ``view_job`` (or the queue's own view permission); pausing,
resuming and setting limits need ``change_queue`` and go through
``django_jobs.queue``.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import counting, queue, stats
from ..durations import age, relative
from ..exceptions import UnknownQueue
from ..models import Queue
from ..states import MEANINGS
from . import chart
from .counts import count_cells
from .display import console_context
from .permissions import ViewedWithJobs
from .queue_limits import limits_page
from .workflow_display import running_workflows


@admin.register(Queue)
class QueueAdmin(ViewedWithJobs, admin.ModelAdmin):
    def get_urls(self):
        view = self.admin_site.admin_view
        prefix = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("", view(self.dashboard_view), name=f"{prefix}_changelist"),
            path("pause/", view(self.pause_view), name=f"{prefix}_pause"),
            path("resume/", view(self.resume_view), name=f"{prefix}_resume"),
            path("limits/", view(self.limits_view), name=f"{prefix}_limits"),
        ]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def dashboard_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        rows = stats.queue_rows(now)
        for alias, count in sorted(stats.unknown_aliases(rows).items()):
            message = _(
                "%(count)d job(s) wait for backend %(alias)r, which is not in the "
                "TASKS setting: no worker will run them."
            )
            self.message_user(
                request, message % {"count": count, "alias": alias}, messages.WARNING
            )
        for row in rows:
            row.lag = age(row.oldest_ready, now)
            row.paused_ago = relative(row.paused_at, now)
            row.cells = count_cells(vars(row), row.estimated)
        estimated = rows[0].estimated if rows else frozenset()
        context = {
            **self.admin_site.each_context(request),
            **console_context("dashboard", now),
            "meanings": MEANINGS,
            "title": _("Queues"),
            "opts": self.opts,
            "rows": rows,
            "totals": count_cells(stats.totals(rows), estimated),
            "estimated": estimated,
            "exact_up_to": counting.cap(),
            "several_backends": len({row.backend for row in rows}) > 1,
            "chart": chart.bars(stats.finished_per_minute(now)),
            "workers": stats.worker_capacity(now),
            "workflows": running_workflows(self.admin_site.name, now),
            "can_pause": self.has_change_permission(request),
            "jobs_url": reverse(f"{self.admin_site.name}:django_jobs_job_changelist"),
            "workers_url": reverse(
                f"{self.admin_site.name}:django_jobs_worker_changelist"
            ),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_jobs/queue/dashboard.html", context
        )

    def limits_view(self, request):
        return limits_page(self, request)

    def pause_view(self, request):
        return self.switch(request, queue.pause, _("Queue %s paused."))

    def resume_view(self, request):
        return self.switch(request, queue.resume, _("Queue %s resumed."))

    def switch(self, request, operation, message: str):
        """Pause or resume the queue named in the POST, then show the dashboard."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_change_permission(request):
            raise PermissionDenied
        name = request.POST.get("queue", "")
        backend = request.POST.get("backend") or "default"
        max_length = Queue._meta.get_field("name").max_length
        if not name or len(name) > max_length or len(backend) > max_length:
            self.message_user(request, _("No such queue."), messages.ERROR)
            return self.to_dashboard()
        try:
            operation(name, backend=backend)
        except UnknownQueue as exc:
            self.message_user(request, str(exc), messages.ERROR)
        else:
            self.message_user(request, message % name, messages.SUCCESS)
        return self.to_dashboard()

    def to_dashboard(self):
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:django_jobs_queue_changelist")
        )
