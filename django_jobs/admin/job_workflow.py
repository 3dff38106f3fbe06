"""A job's place in its workflow, for its page: the workflow, the jobs it
waits for (upstream), the jobs that wait for it (downstream), and the job
whose failure ended it.

Each is one query, made only when the job has one (a job counts the jobs
that wait for it, ``downstream_count``, and names the job whose failure
ended it, ``blocked_by``), kept on the row so that the page's sections and
fields share it. At most ``SHOWN`` jobs are listed; the rest are a link to
the job list, filtered to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import Value
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join, mark_safe
from django.utils.translation import ngettext

from ..models import Dependency, Job, Workflow
from .display import state_badge
from .workflow_display import job_pages
from .workflow_jobs import shown_state

SHOWN = 20


@dataclass(frozen=True, slots=True)
class Related:
    """A job at the other end of an edge, and the edge's name."""

    name: str
    id: int
    task_path: str
    state: str

    @property
    def task_name(self) -> str:
        return self.task_path.rpartition(".")[2]


def _related(rows) -> list[Related]:
    return [Related(*row) for row in rows]


def _memo(job: Job, key: str, read):
    if key not in job.__dict__:
        job.__dict__[key] = read()
    return job.__dict__[key]


def _edges(edges, end: str) -> tuple[list[Related], int]:
    """The first ``SHOWN`` jobs at the ``end`` of ``edges``, and how many
    there are (counted only when there are more)."""
    fields = ["name", f"{end}_id", f"{end}__task_path"]
    shown = shown_state(f"{end}__", timezone.now())
    rows = list(edges.values_list(*fields, shown)[: SHOWN + 1])
    total = len(rows) if len(rows) <= SHOWN else edges.count()
    return _related(rows[:SHOWN]), total


def upstream_of(job: Job) -> tuple[list[Related], int]:
    """The jobs ``job`` waits for, in the order ``after()`` gave them."""

    def read():
        edges = Dependency.objects.filter(downstream_id=job.pk)
        return _edges(edges.order_by("position", "upstream_id"), "upstream")

    return _memo(job, "_console_upstream", read)


def downstream_of(job: Job) -> tuple[list[Related], int]:
    """The jobs that wait for ``job``, oldest first."""

    def read():
        if not job.downstream_count:
            return [], 0
        edges = Dependency.objects.filter(upstream_id=job.pk)
        return _edges(edges.order_by("downstream_id"), "downstream")

    return _memo(job, "_console_downstream", read)


def workflow_of(job: Job) -> Workflow | None:
    def read():
        if job.workflow_id is None:
            return None
        return Workflow.objects.filter(pk=job.workflow_id).first()

    return _memo(job, "_console_workflow", read)


def blocking_job(job: Job) -> Related | None:
    """The job whose failure ended ``job``, if it still exists."""

    def read():
        if job.blocked_by_id is None:
            return None
        rows = Job.objects.filter(pk=job.blocked_by_id).values_list(
            Value(""), "pk", "task_path", shown_state("", timezone.now())
        )
        return next(iter(_related(rows)), None)

    return _memo(job, "_console_blocking", read)


def job_lines(
    site: str, related: Sequence[Related], total: int, param: str, job_id: int
) -> str:
    """One line per job ("merchant: crawl #12 done"), linked to its page;
    "and 480 more" linked to the job list filtered by ``param``."""
    if not total:
        return "-"
    page = job_pages(site)
    lines = format_html_join(
        mark_safe("<br>"),
        '{}<a href="{}">{} #{}</a> {}',
        (
            (
                f"{each.name}: " if each.name else "",
                page(each.id),
                each.task_name,
                each.id,
                state_badge(each.state),
            )
            for each in related
        ),
    )
    more = total - len(related)
    if more <= 0 or not param:
        return lines
    url = reverse(f"{site}:django_jobs_job_changelist")
    text = ngettext("and %d more", "and %d more", more) % more
    return format_html(
        '{}<br><a href="{}?{}={}">{}</a>', lines, url, param, job_id, text
    )
