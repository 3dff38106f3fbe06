"""The job list and job page: find, understand and fix jobs.

The page of a job is read-only. Its state changes only through the actions
(see ``actions``), which call ``django_jobs.queue``: saving a form would
write back every field the page loaded, over whatever a worker wrote since.
So there is no "add job" form (it would take any task path) and no change
or delete form for one job; Django's bulk "delete selected" is replaced by
an action that deletes through the queue too.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..models import Job, Worker
from ..states import State
from ..validation import PRIORITY_MAX, PRIORITY_MIN
from .actions import JobActions
from .changelist import JobChangeList, search_filter
from .compat import CHANGE_FORM_ACTION, Location, PageActions
from .display import console_context, lease, moment, progress_bar, state_badge, when
from .filters import (
    DownstreamOfFilter,
    FailedFilter,
    QueueFilter,
    StateFilter,
    TaskFilter,
    UpstreamOfFilter,
    WorkflowFilter,
)
from .job_page import JobPage
from .pagination import CappedPaginator
from .values import request_values


@admin.register(Job)
class JobAdmin(JobActions, JobPage, PageActions, admin.ModelAdmin):
    # Few columns, with what belongs together in one cell (state and
    # attempts, queue and priority, worker and lease) and times on two lines
    # (clock, then how long ago): the list fits beside the admin's sidebar
    # and the filters at 1,280 px.
    list_display = [
        "id",
        "task",
        "queue_label",
        "state_label",
        "due",
        "holder",
    ]
    list_display_links = ["id"]
    list_filter = [
        StateFilter,
        QueueFilter,
        TaskFilter,
        FailedFilter,
        WorkflowFilter,
        UpstreamOfFilter,
        DownstreamOfFilter,
    ]
    search_fields = ["task_path"]  # shows the box; get_search_results decides
    search_help_text = _("A job id, part of a task path, or text from an error.")
    date_hierarchy = "enqueued_at"
    ordering = ["-id"]
    sortable_by = ["id"]  # other orders would sort the whole table
    list_per_page = 100
    paginator = CappedPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a COUNT per filter choice
    # Permissions

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return obj is None and super().has_delete_permission(request)

    def get_actions(self, request, action_location=Location.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)  # it would bypass django_jobs.queue
        return actions

    def changelist_view(self, request, extra_context=None):
        location = Location.CHANGE_LIST
        self.refuse_unpermitted_action(request, "action", location)
        extra_context = {
            "title": _("Jobs"),
            **console_context("jobs", timezone.now()),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        location = Location.CHANGE_FORM
        self.refuse_unpermitted_action(request, CHANGE_FORM_ACTION, location)
        return super().change_view(request, object_id, form_url, extra_context)

    # Queries

    def get_changelist(self, request, **kwargs):
        return JobChangeList

    def get_search_results(self, request, queryset, search_term):
        term = search_term.strip()
        if not term:
            return queryset, False
        paths = request_values(request, "task_path")
        return queryset.filter(search_filter(term, paths)), False

    # Columns and fields

    def action_checkbox(self, obj):
        """Django's checkbox, written out: its form widget renders a template."""
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select"'
            ' aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            obj.pk,
            format_html(gettext("Select this object for an action - {}"), obj),
        )

    @admin.display(description=_("task"))
    def task(self, job):
        return format_html('<span title="{}">{}</span>', job.task_path, job.task_name)

    @admin.display(description=_("queue"))
    def queue_label(self, job):
        """The queue, its key for the limits per key if any, and the priority
        when it is not the default 0."""
        notes = []
        if job.limit_key:
            notes.append(
                format_html(
                    '<span class="jobs-note" title="{}">{}</span>',
                    _("the key its queue's limits per key hold for"),
                    _("key %s") % job.limit_key,
                )
            )
        if job.priority:
            notes.append(
                format_html(
                    '<span class="jobs-note" title="{}">{}</span>',
                    _("higher runs first, from %(min)d to %(max)d")
                    % {"min": PRIORITY_MIN, "max": PRIORITY_MAX},
                    _("priority %d") % job.priority,
                )
            )
        return format_html_join(
            mark_safe("<br>"), "{}", [(job.queue,), *((note,) for note in notes)]
        )

    @admin.display(description=_("state"))
    def state_label(self, job):
        """The state, the attempts made of those allowed, and for a running
        job whether it is being cancelled, or its progress."""
        label = format_html(
            '{} <span class="jobs-note" title="{}">{}</span>',
            state_badge(job.display_state),
            _("attempts made, of those allowed"),
            self.attempts_label(job),
        )
        if job.cancel_requested_at and job.state == State.RESERVED:
            return format_html(
                '{}<br><span class="jobs-note">{}</span>', label, _("cancelling")
            )
        if job.state == State.RESERVED and job.progress:
            return format_html("{}<br>{}", label, progress_bar(job.progress))
        return label

    @admin.display(description=_("attempts"))
    def attempts_label(self, job):
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description=_("run at"))
    def due(self, job):
        return when(job.run_at)

    @admin.display(description=_("reserved until"))
    def reservation(self, job):
        if job.state != State.RESERVED or job.reserved_until is None:
            return "-"
        return format_html(
            '{} <span class="jobs-note">({})</span>',
            moment(job.reserved_until),
            lease(job.reserved_until),
        )

    @admin.display(description=_("worker"))
    def worker(self, job):
        if not job.reserved_by:
            return "-"
        alive = getattr(job, "worker_alive", None)
        if alive is None:  # the job page; the list marks its jobs in one query
            alive = Worker.objects.filter(pk=job.reserved_by).exists()
        return self.worker_link(job.reserved_by, alive)

    @admin.display(description=_("worker"))
    def holder(self, job):
        """The worker running the job, and when its lease ends."""
        if job.state != State.RESERVED or job.reserved_until is None:
            return self.worker(job)
        return format_html(
            '{}<br><span class="jobs-note">{}</span>',
            self.worker(job),
            lease(job.reserved_until),
        )

    def worker_link(self, worker_id: str, alive: bool) -> str:
        if not alive:
            return format_html(
                '<span class="jobs-worker">{}</span> '
                '<span class="jobs-note">({})</span>',
                worker_id,
                _("gone"),
            )
        url = reverse(
            f"{self.admin_site.name}:django_jobs_worker_change",
            args=[quote(worker_id)],
        )
        return format_html('<a class="jobs-worker" href="{}">{}</a>', url, worker_id)
