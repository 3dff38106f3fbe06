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
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.http import urlencode
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from ..models import Batch, Job, Worker
from ..states import State
from .display import pretty_json, progress_bar
from .schedules import BATCH_COUNTS, batch_progress

RELATED = ["parent", "children", "batch_progress", "schedule", "scheduled_for"]
SECTIONS = [
    (
        None,
        [
            "state_label",
            "task_path",
            "queue",
            "backend",
            "priority",
            "attempts_label",
            "progress_value",
        ],
    ),
    (_("Errors"), ["error_list"]),
    (_("Output"), ["output"]),
    (_("Data"), ["arguments", "keyword_arguments", "result", "saved_checkpoint"]),
    (
        _("Times"),
        [
            "enqueued_at",
            "run_at",
            "started_at",
            "last_attempted_at",
            "reservation",
            "finished_at",
            "expires_at",
            "cancel_requested_at",
        ],
    ),
    (_("Workers"), ["worker", "worker_history"]),
    (_("Related jobs"), RELATED),
    (_("Options"), ["ttr", "max_attempts", "on_failure", "unique_key"]),
]


class JobPage:
    """The read-only fields of ``JobAdmin``'s page for one job."""

    fieldsets = [(title, {"fields": fields}) for title, fields in SECTIONS]
    readonly_fields = [name for _title, fields in SECTIONS for name in fields]

    def get_fieldsets(self, request, obj=None):
        """The sections, without the fields and sections this job leaves empty."""
        if obj is None:
            return self.fieldsets
        empty = {
            "error_list": not obj.errors,
            "output": not obj.logs,
            "progress_value": obj.progress is None,
            "saved_checkpoint": obj.checkpoint is None,
        }
        related = (obj.parent_id, obj.batch_id, obj.schedule_id)
        if not any(related) and not child_count(obj):
            empty.update(dict.fromkeys(RELATED, True))
        fieldsets = []
        for title, options in self.fieldsets:
            fields = [name for name in options["fields"] if not empty.get(name)]
            if fields:
                fieldsets.append((title, {**options, "fields": fields}))
        return fieldsets

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
        batch = Batch.objects.annotate(**BATCH_COUNTS).get(pk=job.batch_id)
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


def parse_moment(text) -> datetime | str:
    try:
        return timezone.localtime(datetime.fromisoformat(text))
    except (TypeError, ValueError):
        return text or ""
