"""The worker list: who is running, where, on which queues, and who went quiet.

Rows belong to the workers: each creates its own, heartbeats it and removes
it on a clean exit; the rescuer removes those of dead workers. So the list
is read-only and nothing here deletes a row (a live worker's jobs would be
rescued from under it). A worker whose last heartbeat is older than its
backend's ``WORKER_TIMEOUT`` is flagged stale: presumed dead, its jobs are
about to be rescued. The worker that holds its backend's lease, and so runs
the fleet's duties (rescue, schedules, pruning), says so under its status.
An autoscaling worker (``--concurrency MIN:MAX``) shows its range under its
current size, and its page the database connections it may hold.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Exists, OuterRef
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _

from ..models import Lease, Worker
from ..states import State
from ..stats import is_stale
from .display import when
from .readonly import ReadOnlyAdmin


@admin.register(Worker)
class WorkerAdmin(ReadOnlyAdmin):
    # The status right after the host, and the long id only on hover and on
    # the worker's page: the list fits beside the sidebar and filters at 1,280 px.
    list_display = ["host", "status", "queue_names", "load", "started", "heartbeat"]
    list_display_links = ["host"]
    sortable_by = []  # a handful of rows, in host order; arrows cost width
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
        "min_concurrency",
        "max_concurrency",
        "connections",
        "jobs",
        "started",
        "heartbeat",
        "status",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        leases = Lease.objects.filter(
            holder=OuterRef("pk"),
            name=OuterRef("backend"),
            expires_at__gt=timezone.now(),
        )
        return super().get_queryset(request).annotate(leads=Exists(leases))

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

    @admin.display(description=_("host"))
    def host(self, worker):
        return format_html(
            '<span title="{}">{}</span><br><span class="jobs-note">pid {}</span>',
            worker.pk,
            worker.hostname,
            worker.pid,
        )

    @admin.display(description=_("jobs / slots"))
    def load(self, worker):
        """Jobs in hand (linked to them) out of the worker's current size, and
        the range it grows and shrinks in, if it does."""
        load = format_html("{} / {}", self.jobs(worker), worker.concurrency)
        least, most = worker.min_concurrency, worker.max_concurrency
        if least is None or most is None or least == most:
            return load
        return format_html(
            '{}<br><span class="jobs-note" title="{}">{}</span>',
            load,
            _("autoscaling: grows with its backlog, shrinks when idle"),
            _("min %(least)d, max %(most)d") % {"least": least, "most": most},
        )

    @admin.display(description=_("started at"))
    def started(self, worker):
        return when(worker.started_at)

    @admin.display(description=_("last heartbeat"))
    def heartbeat(self, worker):
        return when(worker.last_heartbeat)

    @admin.display(description=_("status"))
    def status(self, worker):
        if is_stale(worker):
            return format_html(
                '<span class="jobs-state jobs-state-stale" title="{}">{}</span>',
                _("silent past WORKER_TIMEOUT: presumed dead, its jobs are rescued"),
                _("stale"),
            )
        live = format_html(
            '<span class="jobs-state jobs-state-live" title="{}">{}</span>',
            _("sending heartbeats"),
            _("live"),
        )
        if not getattr(worker, "leads", False):
            return live
        return format_html(
            '{}<br><span class="jobs-note" title="{}">{}</span>',
            live,
            _("holds the lease: rescues, enqueues schedules, prunes for the fleet"),
            _("runs the duties"),
        )
