"""The job list's queries: search, order, worker links and the date drill-down.

Search understands three things and keeps each on an index: a job id (the
primary key), part of a task path (matched against the few distinct task
paths, then ``task_path IN (...)`` on the task index) and text from an
error. Error text cannot be indexed without an extension, so it is looked
for in the ``ERROR_SEARCH_WINDOW`` most recent jobs that failed at least
once (a range of the partial "failed" index), which bounds its cost
however much history the table keeps.
"""

from __future__ import annotations

from django.contrib.admin.views.main import ChangeList
from django.db.models import Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.functional import cached_property

from ..models import Job, Worker
from ..states import State
from .dates import date_hierarchy
from .filters import StateFilter

ERROR_SEARCH_WINDOW = 10_000

#: The columns the list shows. The others hold JSON (arguments, errors, up
#: to 16 KiB of output per attempt) that a hundred rows need not carry.
LIST_COLUMNS = [
    "id",
    "backend",
    "queue",
    "limit_key",
    "task_path",
    "state",
    "priority",
    "run_at",
    "attempts",
    "max_attempts",
    "enqueued_at",
    "reserved_until",
    "reserved_by",
    "progress",
    "cancel_requested_at",
]


def search_filter(term: str, task_paths: list[str]) -> Q:
    """What a search box entry matches: an id, one of ``task_paths`` (every
    path in the table) by part of its name, or error text."""
    number = term.removeprefix("#")
    if number.isdigit():
        return Q(pk=int(number))
    needle = term.casefold()
    paths = [path for path in task_paths if needle in path.casefold()]
    return Q(task_path__in=paths) | error_filter(term)


def error_filter(term: str) -> Q:
    """Jobs among the most recent failed ones whose errors contain ``term``."""
    failed = ~Q(errors=[])
    window = Job.objects.filter(failed).order_by("-pk").values("pk")
    oldest = window[ERROR_SEARCH_WINDOW - 1 : ERROR_SEARCH_WINDOW]
    return (
        failed
        & Q(pk__gte=Coalesce(Subquery(oldest), Value(0)))
        & Q(errors__icontains=term)
    )


def by_finish(ordering: list[str]) -> list[str]:
    """``ordering`` (by id) led by ``finished_at`` in the same direction.

    On PostgreSQL done jobs live in the history's day tables, and the hot
    table holds almost none of them: ordered by id, the planner walks the hot
    table's whole primary key looking for done rows before the merge with
    the day tables can start. Ordered by finish, the hot table's partial
    (state, finished_at) index and each day's (finished_at) index give their
    newest (or oldest) rows at once.
    """
    direction = "-" if ordering[0].startswith("-") else ""
    return [f"{direction}finished_at", *ordering]


class JobChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.only(*LIST_COLUMNS)

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
        """Newest first, on an index whatever the URL asks.

        Only the id orders the list: any other order would sort every row.
        Within a date of the drill-down the order is ``enqueued_at`` (the
        same order, as ids grow with time), so that the (enqueued_at) index
        finds the day's rows instead of the primary key walking to them.
        Done jobs are listed in the order they finished (see ``by_finish``).
        """
        if any(name.startswith(f"{self.date_hierarchy}__") for name in self.params):
            return ["-enqueued_at", "-pk"]
        ordering = super().get_ordering(request, queryset)
        if not all(field.lstrip("-") in ("id", "pk") for field in ordering):
            ordering = ["-pk"]
        if self.params.get(StateFilter.parameter_name) == State.DONE:
            return by_finish(ordering)
        return ordering

    @cached_property
    def date_links(self) -> dict:
        """The date drill-down, from a MIN/MAX query (see ``dates``)."""
        return date_hierarchy(self)
