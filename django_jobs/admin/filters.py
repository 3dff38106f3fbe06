"""The job list's filters, each one answered by an index.

- state: ready and delayed split on ``run_at``, as people count them; ready
  and delayed use the partial claim index, reserved the partial reserved
  index, buried the (state, finished_at) index or the primary key, and done
  the (state, finished_at) index and the history's (finished_at) indexes:
  done jobs are listed by finish time (``changelist.by_finish``);
- queue and task: the (queue, -id) and (task_path, -id) indexes, and their
  choices come from a loose index scan rather than ``SELECT DISTINCT``;
- failed at least once: the partial index on ``NOT errors = '[]'``, which
  only matches a query written as ``exclude(errors=[])``;
- workflow, and the jobs a job waits for or that wait for it: set by links
  (from a workflow, from a job's page), shown only then; answered by the
  (workflow, state) index and the edges' indexes.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from ..models import Dependency
from ..stats import DISPLAY_STATES, in_state
from .values import request_values


class StateFilter(admin.SimpleListFilter):
    title = _("state")
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [(state, state) for state in DISPLAY_STATES]

    def queryset(self, request, queryset):
        if self.value() in DISPLAY_STATES:
            return in_state(queryset, self.value())
        return queryset


class ColumnFilter(admin.SimpleListFilter):
    """Choices are the column's distinct values, found through its index."""

    column = ""

    def lookups(self, request, model_admin):
        return [(value, value) for value in request_values(request, self.column)]

    def queryset(self, request, queryset):
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.column: self.value()})


class QueueFilter(ColumnFilter):
    title = _("queue")
    parameter_name = column = "queue"


class TaskFilter(ColumnFilter):
    title = _("task")
    parameter_name = column = "task_path"


class FailedFilter(admin.SimpleListFilter):
    title = _("failed at least once")
    parameter_name = "failed"

    def lookups(self, request, model_admin):
        return [("yes", _("yes")), ("no", _("no"))]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(errors=[])
        if self.value() == "no":
            return queryset.filter(errors=[])
        return queryset


class LinkedFilter(admin.SimpleListFilter):
    """A filter that links set (a workflow's counts, a job's page saying
    "and 480 more"): shown, with its one choice, only while it is active.

    Its value is an id; anything else shows every job.
    """

    #: The choice's label, given the id.
    label = ""

    def chosen(self) -> int | None:
        value = self.value()
        return int(value) if value and value.isdigit() else None

    def lookups(self, request, model_admin):
        chosen = self.chosen()
        return [] if chosen is None else [(str(chosen), self.label % chosen)]

    def queryset(self, request, queryset):
        chosen = self.chosen()
        return queryset if chosen is None else queryset.filter(self.condition(chosen))

    def condition(self, chosen: int) -> Q:
        raise NotImplementedError


class WorkflowFilter(LinkedFilter):
    title = _("workflow")
    parameter_name = "workflow"
    label = _("#%d")

    def condition(self, chosen: int) -> Q:
        return Q(workflow_id=chosen)


class UpstreamOfFilter(LinkedFilter):
    """The jobs that job N waits for (its upstream)."""

    title = _("waited for by")
    parameter_name = "upstream_of"
    label = _("job #%d")

    def condition(self, chosen: int) -> Q:
        edges = Dependency.objects.filter(downstream_id=chosen)
        return Q(pk__in=edges.values("upstream_id"))


class DownstreamOfFilter(LinkedFilter):
    """The jobs that wait for job N (its downstream)."""

    title = _("waiting for")
    parameter_name = "downstream_of"
    label = _("job #%d")

    def condition(self, chosen: int) -> Q:
        edges = Dependency.objects.filter(upstream_id=chosen)
        return Q(pk__in=edges.values("downstream_id"))
