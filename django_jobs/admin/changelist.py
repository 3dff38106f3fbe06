"""The job list's queries: search, worker links and the date drill-down.

Search understands three things and keeps each on an index: a job id (the
primary key), part of a task path (matched against the few distinct task
paths, then ``task_path IN (...)`` on the task index) and text from an
error (only jobs that failed at least once, on the partial "failed" index).
"""

from __future__ import annotations

from django.contrib.admin.views.main import ChangeList
from django.db.models import Q
from django.utils.functional import cached_property

from ..models import Worker
from .dates import date_hierarchy
from .values import distinct_values


def search_filter(term: str) -> Q:
    """What a search box entry matches: an id, a task path or error text."""
    number = term.removeprefix("#")
    if number.isdigit():
        return Q(pk=int(number))
    needle = term.casefold()
    paths = [path for path in distinct_values("task_path") if needle in path.casefold()]
    return Q(task_path__in=paths) | (~Q(errors=[]) & Q(errors__icontains=term))


class JobChangeList(ChangeList):
    def get_results(self, request):
        """Fetch the page, and in one more query which of its workers are alive."""
        super().get_results(request)
        jobs = list(self.result_list)
        held = {job.reserved_by for job in jobs if job.reserved_by}
        alive = set()
        if held:
            alive = set(Worker.objects.filter(pk__in=held).values_list("pk", flat=True))
        for job in jobs:
            job.worker_alive = job.reserved_by in alive

    def get_ordering(self, request, queryset):
        """By id only, even from a hand-made URL: other orders sort every row."""
        ordering = super().get_ordering(request, queryset)
        if all(field.lstrip("-") in ("id", "pk") for field in ordering):
            return ordering
        return ["-pk"]

    @cached_property
    def date_links(self) -> dict:
        """The date drill-down, from a MIN/MAX query (see ``dates``)."""
        return date_hierarchy(self)
