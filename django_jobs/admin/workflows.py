"""Workflows in the console: the list, a page per workflow with its graph,
and the actions that cancel one or retry its failed steps.

Read-only, like a job's page: a workflow's state is kept in step with its
jobs by ``django_jobs.queue``, and the actions (``workflow_actions``) call
``queue.workflows``. The list counts its page's jobs in one grouped query;
a workflow's page reads its jobs and its edges once each and draws the
graph from them (``graph``), whatever its size.

Seeing workflows needs ``view_workflow`` (or ``view_job``: whoever sees the
jobs sees how they belong together); the actions need ``change_workflow``.
"""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from ..models import Workflow
from .compat import CHANGE_FORM_ACTION, Location, PageActions
from .display import console_context, full_time, moment, short_time, when
from .permissions import ViewedWithJobs
from .workflow_actions import WorkflowActions
from .workflow_display import (
    STATE_MEANINGS,
    deadline_note,
    progress,
    workflow_badge,
)
from .workflow_graph import graph_context
from .workflow_jobs import counts_of, read


class WorkflowChangeList(ChangeList):
    def get_results(self, request):
        """Fetch the page, then its workflows' counts in one grouped query."""
        super().get_results(request)
        workflows = list(self.result_list)
        counts = counts_of((w.pk for w in workflows), self.queryset.db)
        for workflow in workflows:
            workflow.counts = counts[workflow.pk]


@admin.register(Workflow)
class WorkflowAdmin(ViewedWithJobs, WorkflowActions, PageActions, admin.ModelAdmin):
    list_display = [
        "title",
        "state_label",
        "jobs_progress",
        "started",
        "finished",
        "deadline_left",
    ]
    list_display_links = ["title"]
    list_filter = ["state"]
    search_fields = ["name"]  # shows the box; get_search_results decides
    search_help_text = _("A workflow id, or part of its name.")
    ordering = ["-pk"]
    sortable_by = []  # newest first, on the primary key
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER  # a COUNT per filter choice
    fields = [
        "state_explained",
        "name_and_runs",
        "backend",
        "jobs_progress",
        "started_moment",
        "finished_moment",
        "deadline_at",
        "reason_text",
    ]
    readonly_fields = fields

    # Permissions

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        """The actions' permission; a workflow's page is never a form."""
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request, action_location=Location.CHANGE_LIST):
        actions = super().get_actions(request, action_location=action_location)
        actions.pop("delete_selected", None)
        return actions

    def get_fields(self, request, obj=None):
        """Its page leaves out the times and the reason it does not have."""
        if obj is None:
            return self.fields
        empty = {
            "finished_moment": obj.finished_at is None,
            "deadline_at": obj.deadline is None,
            "reason_text": not obj.reason,
        }
        return [name for name in self.fields if not empty.get(name)]

    # Views

    def changelist_view(self, request, extra_context=None):
        self.refuse_unpermitted_action(request, "action", Location.CHANGE_LIST)
        extra_context = {
            "title": _("Workflows"),
            **workflow_console("workflows"),
            **(extra_context or {}),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        location = Location.CHANGE_FORM
        self.refuse_unpermitted_action(request, CHANGE_FORM_ACTION, location)
        extra_context = {**workflow_console("workflow"), **(extra_context or {})}
        return super().change_view(request, object_id, form_url, extra_context)

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        """The page, with its graph (drawn from the jobs its fields read)."""
        if obj is not None:
            context.update(graph_context(self.admin_site.name, obj))
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def get_changelist(self, request, **kwargs):
        return WorkflowChangeList

    def get_search_results(self, request, queryset, search_term):
        """An id (``12`` or ``#12``), or part of a name."""
        term = search_term.strip()
        if not term:
            return queryset, False
        number = term.removeprefix("#")
        matches = Q(name__icontains=term)
        if number.isdigit():
            matches |= Q(pk=int(number))
        return queryset.filter(matches), False

    # Columns and fields

    @admin.display(description=_("workflow"))
    def title(self, workflow):
        return format_html(
            '{} <span class="jobs-note">#{}</span>', workflow.name, workflow.pk
        )

    @admin.display(description=_("state"))
    def state_label(self, workflow):
        """The state, and why it failed or was cancelled (the start of it)."""
        badge = workflow_badge(workflow.state)
        if not workflow.reason:
            return badge
        short = Truncator(workflow.reason).chars(90)
        return format_html(
            '{}<br><span class="jobs-note" title="{}">{}</span>',
            badge,
            workflow.reason,
            short,
        )

    @admin.display(description=_("jobs"))
    def jobs_progress(self, workflow):
        """How far it has got: a bar, jobs done of all, the others by state."""
        counts = getattr(workflow, "counts", None)
        if counts is None:  # its page: counted from the jobs its graph reads
            counts = read(workflow).counts
        return progress(self.admin_site.name, workflow.pk, counts)

    @admin.display(description=_("started"))
    def started(self, workflow):
        return when(workflow.created_at)

    @admin.display(description=_("finished"))
    def finished(self, workflow):
        return when(workflow.finished_at)

    @admin.display(description=_("deadline"))
    def deadline_left(self, workflow):
        """The deadline, and for a running workflow the time left before it."""
        if workflow.deadline is None:
            return "-"
        note = deadline_note(workflow)
        return format_html("{}<br>{}", short_time(workflow.deadline), note)

    @admin.display(description=_("state"))
    def state_explained(self, workflow):
        meaning = STATE_MEANINGS.get(workflow.state, "")
        return format_html(
            '{} <span class="jobs-note">{}</span>',
            workflow_badge(workflow.state),
            meaning,
        )

    @admin.display(description=_("name"))
    def name_and_runs(self, workflow):
        """Its name, linked to every workflow of that name (its other runs)."""
        url = reverse(f"{self.admin_site.name}:django_jobs_workflow_changelist")
        query = urlencode({"name": workflow.name})
        return format_html(
            '{} <a class="jobs-note" href="{}?{}">{}</a>',
            workflow.name,
            url,
            query,
            _("every run of this name"),
        )

    @admin.display(description=_("started"))
    def started_moment(self, workflow):
        return moment(workflow.created_at)

    @admin.display(description=_("finished"))
    def finished_moment(self, workflow):
        return moment(workflow.finished_at)

    @admin.display(description=_("deadline"))
    def deadline_at(self, workflow):
        """The deadline to the second, and the time left before it."""
        if workflow.deadline is None:
            return "-"
        note = deadline_note(workflow)
        if not note:  # it has ended: when the deadline was, as other times
            return moment(workflow.deadline)
        return format_html("{} {}", full_time(workflow.deadline), note)

    @admin.display(description=_("reason"))
    def reason_text(self, workflow):
        return workflow.reason or "-"


def workflow_console(page: str) -> dict:
    """``console_context`` for the workflow pages: the refresh switch says
    that it waits while workflows, not jobs, are selected."""
    context = console_context(page, timezone.now())
    context["refresh_text"]["selected"] = _("workflows are selected")
    return context
