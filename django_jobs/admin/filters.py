"""The job list's filters, each one answered by an index.

- state: ready and delayed split on ``run_at``, as people count them; ready
  and delayed use the partial claim index, reserved the partial reserved
  index, done and buried the (state, finished_at) index or the primary key;
- queue and task: the (queue, -id) and (task_path, -id) indexes, and their
  choices come from a loose index scan rather than ``SELECT DISTINCT``;
- failed at least once: the partial index on ``NOT errors = '[]'``, which
  only matches a query written as ``exclude(errors=[])``.
"""

from __future__ import annotations

from django.contrib import admin
from django.utils.translation import gettext_lazy as _

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
