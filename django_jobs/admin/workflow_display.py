"""How workflows look in the console: their state, progress and deadline.

Plain functions of a value, shared by the workflow list, a workflow's page
and the dashboard, so that each shows the same thing the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.db.models import F
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from ..durations import duration
from ..models import Workflow
from ..states import MEANINGS
from .workflow_jobs import Counts, counts_of

BAR_WIDTH = 100


#: What each state of a workflow means, on its label and on its page.
STATE_MEANINGS = {
    Workflow.Status.RUNNING: gettext_lazy("some of its jobs have not finished"),
    Workflow.Status.SUCCEEDED: gettext_lazy("every job of it is done"),
    Workflow.Status.FAILED: gettext_lazy(
        "a job of it failed for good, or it missed its deadline"
    ),
    Workflow.Status.CANCELLED: gettext_lazy("cancelled by a person"),
}


def workflow_badge(state: str) -> str:
    """A workflow's state as a coloured label (colours in styles.html),
    saying what it means on hover."""
    return format_html(
        '<span class="jobs-state jobs-workflow-{0}" title="{1}">{0}</span>',
        state,
        STATE_MEANINGS.get(state, ""),
    )


def time_left(workflow: Workflow, now: datetime | None = None) -> str:
    """ "1 h 10 min left" before a running workflow's deadline, "missed
    3 s ago" past it; "" for a workflow without one, or that has ended."""
    if workflow.deadline is None or workflow.state != Workflow.Status.RUNNING:
        return ""
    left = workflow.deadline - (now or timezone.now())
    if left.total_seconds() >= 0:
        return _("%s left") % duration(left)
    return _("missed %s ago") % duration(left)


def deadline_note(workflow: Workflow, now: datetime | None = None) -> str:
    """``time_left`` as a note; a past deadline is a warning."""
    text = time_left(workflow, now)
    if not text:
        return ""
    missed = workflow.deadline <= (now or timezone.now())
    return format_html(
        '<span class="jobs-note{}">{}</span>', " jobs-late" if missed else "", text
    )


def job_pages(site: str) -> Callable[[int], str]:
    """The URL of a job's page, given its id: one ``reverse`` for a page
    that links a hundred jobs, not one per link."""
    head, _, tail = reverse(f"{site}:django_jobs_job_change", args=[0]).rpartition(
        "/0/"
    )
    return lambda job_id: f"{head}/{job_id}/{tail}"


def jobs_url(site: str, workflow_id: int, **filters: str) -> str:
    """The job list, showing the jobs of one workflow (in one state)."""
    url = reverse(f"{site}:django_jobs_job_changelist")
    return f"{url}?{urlencode({'workflow': workflow_id, **filters})}"


def bar(counts: Counts) -> str:
    """The share of each state among a workflow's jobs, as a thin SVG bar
    (attributes, not inline styles: it works under a strict CSP)."""
    total = counts.total
    if not total:
        return ""
    parts, x = [], 0.0
    for state, count in counts.items():
        if count:
            width = BAR_WIDTH * count / total
            parts.append((state, f"{x:.1f}", f"{max(width, 1):.1f}"))
            x += width
    rects = format_html_join(
        "",
        '<rect class="jobs-fill-{}" x="{}" y="0" width="{}" height="8"></rect>',
        parts,
    )
    return format_html(
        '<svg class="jobs-bar" width="{}" height="8" aria-hidden="true">{}</svg>',
        BAR_WIDTH,
        rects,
    )


def progress(site: str, workflow_id: int, counts: Counts) -> str:
    """ "12 of 20 done" over a bar, and the jobs not done by state, each
    linked to the job list of the workflow's jobs in that state."""
    done = format_html(
        '<a href="{}">{}</a>',
        jobs_url(site, workflow_id),
        _("%(done)d of %(total)d done") % {"done": counts.done, "total": counts.total},
    )
    others = [(state, count) for state, count in counts.items() if state != "done"]
    chips = format_html_join(
        " ",
        '<a href="{}"><span class="jobs-state jobs-state-{}" title="{}">'
        "{} {}</span></a>",
        (
            (_state_url(site, workflow_id, state), state, MEANINGS[state], count, state)
            for state, count in others
            if count
        ),
    )
    return format_html("{}<br>{}<br>{}", bar(counts), done, chips)


def _state_url(site: str, workflow_id: int, state: str) -> str:
    # Its count of ready jobs includes delayed ones: the column, not the
    # state filter (which splits them on run_at).
    if state == "ready":
        return jobs_url(site, workflow_id, state__exact=state)
    return jobs_url(site, workflow_id, state=state)


#: The running workflows the dashboard lists, nearest deadline first.
DASHBOARD_SHOWN = 10


def running_workflows(site: str, now: datetime) -> dict[str, Any]:
    """The dashboard's running workflows: the ``DASHBOARD_SHOWN`` nearest
    their deadline (those without one after), with their progress and time
    left, from two queries (three when there are more to count)."""
    running = Workflow.objects.filter(state=Workflow.Status.RUNNING)
    shown = list(
        running.order_by(F("deadline").asc(nulls_last=True), "-pk")[
            : DASHBOARD_SHOWN + 1
        ]
    )
    total = len(shown) if len(shown) <= DASHBOARD_SHOWN else running.count()
    shown = shown[:DASHBOARD_SHOWN]
    counts = counts_of(workflow.pk for workflow in shown)
    rows = [
        {
            "workflow": workflow,
            "progress": progress(site, workflow.pk, counts[workflow.pk]),
            "left": deadline_note(workflow, now),
        }
        for workflow in shown
    ]
    url = reverse(f"{site}:django_jobs_workflow_changelist")
    return {
        "rows": rows,
        "total": total,
        "url": url,
        "running_url": f"{url}?{urlencode({'state__exact': 'running'})}",
    }
