"""What a job's page shows: everything needed to understand what happened.

Fields and sections a job leaves empty (no errors, no output, no related
jobs) are left out, and errors come first: on a failed job they are the
reason to look.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib import admin
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import stats
from ..models import Batch, Job, Worker
from ..sizes import limits_text, usage_rows
from ..states import MEANINGS, State
from .batches import batch_progress
from .display import moment, pretty_json, progress_bar, state_badge
from .job_workflow import (
    blocking_job,
    downstream_of,
    job_lines,
    upstream_of,
    workflow_of,
)
from .workflow_display import workflow_badge

RELATED = ["parent", "children", "batch_progress", "schedule", "scheduled_tick"]
WORKFLOW = ["workflow_link", "upstream", "downstream", "ended_by"]
SECTIONS = [
    (
        None,
        [
            "state_explained",
            "task_path",
            "queue",
            "backend",
            "priority",
            "attempts_label",
            "progress_value",
        ],
    ),
    (_("Errors"), ["error_list"]),
    (_("Usage"), ["usage_table"]),
    (_("Output"), ["output"]),
    (_("Data"), ["arguments", "keyword_arguments", "result", "saved_checkpoint"]),
    (
        _("Times"),
        [
            "enqueued",
            "due_at",
            "started",
            "last_attempted",
            "reservation",
            "finished",
            "expires",
            "cancel_requested",
        ],
    ),
    (_("Workers"), ["worker", "worker_history"]),
    (_("Related jobs"), RELATED),
    (_("Workflow"), WORKFLOW),
    (
        _("Options"),
        [
            *("ttr", "max_attempts", "on_failure", "unique_key"),
            *("limit_key", "resource_limits"),
        ],
    ),
]


def moment_of(field: str):
    """A page field showing the job's ``field`` to the second, and its age."""

    @admin.display(description=Job._meta.get_field(field).verbose_name)
    def show(self, job):
        return moment(getattr(job, field))

    return show


class JobPage:
    """The read-only fields of ``JobAdmin``'s page for one job."""

    # Times to the second, with how long ago (Django's own format stops at
    # the minute).
    enqueued = moment_of("enqueued_at")
    due_at = moment_of("run_at")
    started = moment_of("started_at")
    last_attempted = moment_of("last_attempted_at")
    finished = moment_of("finished_at")
    expires = moment_of("expires_at")
    cancel_requested = moment_of("cancel_requested_at")
    scheduled_tick = moment_of("scheduled_for")

    fieldsets = [(title, {"fields": fields}) for title, fields in SECTIONS]
    readonly_fields = [name for _title, fields in SECTIONS for name in fields]

    def get_fieldsets(self, request, obj=None):
        """The sections, without the fields and sections this job leaves empty."""
        if obj is None:
            return self.fieldsets
        empty = {
            "error_list": not obj.errors,
            "output": not obj.logs,
            "usage_table": not usage_rows(obj.usage),
            "progress_value": obj.progress is None,
            "saved_checkpoint": obj.checkpoint is None,
        }
        related = (obj.parent_id, obj.batch_id, obj.schedule_id)
        if not any(related) and not child_count(obj):
            empty.update(dict.fromkeys(RELATED, True))
        empty.update(
            workflow_link=obj.workflow_id is None,
            upstream=not upstream_of(obj)[1],
            downstream=not obj.downstream_count,
            ended_by=obj.blocked_by_id is None,
        )
        fieldsets = []
        for title, options in self.fieldsets:
            fields = [name for name in options["fields"] if not empty.get(name)]
            if fields:
                fieldsets.append((title, {**options, "fields": fields}))
        return fieldsets

    @admin.display(description=_("state"))
    def state_explained(self, job):
        """The state and what it means; whether a running job is being cancelled."""
        state = job.display_state
        text = format_html(
            '{} <span class="jobs-note">{}</span>', state_badge(state), MEANINGS[state]
        )
        if job.state == State.RESERVED and job.cancel_requested_at:
            note = _("cancelling: its worker stops it within seconds")
            return format_html('{}<br><span class="jobs-note">{}</span>', text, note)
        return text

    @admin.display(description=_("progress"))
    def progress_value(self, job):
        return "-" if job.progress is None else progress_bar(job.progress)

    @admin.display(description=_("errors"))
    def error_list(self, job):
        if not is_list_of_objects(job.errors):  # written by hand: show it as it is
            return pretty_json(job.errors)
        errors = [
            {**error, "at": parse_moment(error.get("at"))}
            for error in reversed(job.errors)
        ]
        return render_to_string("admin/django_jobs/job/errors.html", {"errors": errors})

    @admin.display(description=_("output"))
    def output(self, job):
        """The tail of each attempt's stdout and stderr, newest first."""
        if not is_list_of_objects(job.logs):
            return pretty_json(job.logs)
        return render_to_string(
            "admin/django_jobs/job/logs.html", {"logs": list(reversed(job.logs))}
        )

    @admin.display(description=_("usage per attempt"))
    def usage_table(self, job):
        """Peak memory, CPU and wall time of each attempt, newest first."""
        return render_to_string(
            "admin/django_jobs/job/usage.html", {"rows": usage_rows(job.usage)}
        )

    @admin.display(description=_("limits"))
    def resource_limits(self, job):
        """The task's own memory and CPU limits; a worker's or OPTIONS' apply
        to a job whose task set none."""
        return limits_text(job.max_memory, job.max_cpu_seconds) or _(
            "none of its own (the worker's --max-memory / --max-cpu-seconds, "
            "else OPTIONS, apply)"
        )

    @admin.display(description=_("arguments"))
    def arguments(self, job):
        return pretty_json(job.args)

    @admin.display(description=_("keyword arguments"))
    def keyword_arguments(self, job):
        return pretty_json(job.kwargs)

    @admin.display(description=_("return value"))
    def result(self, job):
        return pretty_json(job.return_value) if job.state == State.DONE else "-"

    @admin.display(description=_("checkpoint"))
    def saved_checkpoint(self, job):
        return "-" if job.checkpoint is None else pretty_json(job.checkpoint)

    @admin.display(description=_("all attempts' workers"))
    def worker_history(self, job):
        if not job.worker_ids:
            return "-"
        if not isinstance(job.worker_ids, list) or not all(
            isinstance(w, str) for w in job.worker_ids
        ):
            return pretty_json(job.worker_ids)
        alive = set(
            Worker.objects.filter(pk__in=set(job.worker_ids)).values_list(
                "pk", flat=True
            )
        )
        return format_html_join(
            ", ", "{}", ((self.worker_link(w, w in alive),) for w in job.worker_ids)
        )

    @admin.display(description=_("batch"))
    def batch_progress(self, job):
        if job.batch_id is None:
            return "-"
        batch = Batch.objects.annotate(**stats.BATCH_COUNTS).get(pk=job.batch_id)
        return batch_progress(self.admin_site.name, batch)

    @admin.display(description=_("children"))
    def children(self, job):
        """The jobs this job enqueued while it ran, as a filtered job list."""
        count = child_count(job)
        if not count:
            return "-"
        url = reverse(f"{self.admin_site.name}:django_jobs_job_changelist")
        query = urlencode({"parent__id__exact": job.pk})
        text = ngettext("%d job", "%d jobs", count) % count
        return format_html('<a href="{}?{}">{}</a>', url, query, text)

    # Its workflow: the jobs it waits for and those that wait for it.

    @admin.display(description=_("workflow"))
    def workflow_link(self, job):
        found = workflow_of(job)
        if found is None:
            return format_html("#{}", job.workflow_id)  # its row was deleted
        url = reverse(
            f"{self.admin_site.name}:django_jobs_workflow_change", args=[found.pk]
        )
        return format_html(
            '<a href="{}">{}</a> {}',
            url,
            found,
            workflow_badge(found.state),
        )

    @admin.display(description=_("waits for"))
    def upstream(self, job):
        """The jobs it waits for (its upstream), with the names ``after()``
        gave them."""
        edges, total = upstream_of(job)
        return job_lines(self.admin_site.name, edges, total, "upstream_of", job.pk)

    @admin.display(description=_("waited for by"))
    def downstream(self, job):
        """The jobs that wait for it (its downstream)."""
        edges, total = downstream_of(job)
        return job_lines(self.admin_site.name, edges, total, "downstream_of", job.pk)

    @admin.display(description=_("ended by the failure of"))
    def ended_by(self, job):
        """The job whose failure ended this one: retrying that one brings
        this one back."""
        blocking = blocking_job(job)
        if blocking is None:
            return format_html("#{}", job.blocked_by_id)
        return job_lines(self.admin_site.name, [blocking], 1, "", job.pk)


def is_list_of_objects(value) -> bool:
    """Whether a JSON column holds what django-jobs writes there: a list of
    objects (a row written by hand may hold anything)."""
    return isinstance(value, list) and all(isinstance(v, dict) for v in value)


def child_count(job: Job) -> int:
    """How many jobs ``job`` enqueued; counted once per page (the fieldsets
    ask, then the children field shows it)."""
    if "_child_count" not in job.__dict__:
        job._child_count = Job.objects.filter(parent=job).count()
    return job._child_count


def parse_moment(text) -> str:
    """An error's time as the page shows times, if it parses."""
    try:
        return moment(datetime.fromisoformat(text))
    except (TypeError, ValueError):
        return text or ""
