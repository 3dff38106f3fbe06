"""Schedules and batches in the console.

Schedules are editable: enable or disable them, add new ones. A schedule
declared in settings is rewritten from them when a worker starts, so only
its ``enabled`` switch can be changed here. Every mistake a worker would
trip on (a bad cron expression, time zone or task, arguments that do not fit
the task) is a form error.

Batches are read-only: their jobs say how far they have got.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import OuterRef, Subquery
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import schedules
from ..backend import jobs_backend
from ..compat import InvalidTask
from ..models import Job, Schedule

SETTINGS_FIELDS = [
    "task_path",
    "cron",
    "time_zone",
    "args",
    "kwargs",
    "queue",
    "priority",
]


class ScheduleForm(forms.ModelForm):
    class Meta:
        model = Schedule
        fields = ["name", "backend", "enabled", *SETTINGS_FIELDS]

    def clean_cron(self):
        return self._checked(schedules.check_cron, self.cleaned_data["cron"])

    def clean_time_zone(self):
        zone = self.cleaned_data["time_zone"]
        self._checked(schedules.check_time_zone, zone)
        return zone

    def clean_task_path(self):
        path = self.cleaned_data["task_path"]
        self._checked(schedules.check_task, path)
        return path

    def clean(self):
        data = super().clean()
        if self.errors or "task_path" not in data:
            return data
        try:
            backend = jobs_backend(data["backend"])
        except ValueError as exc:
            self.add_error("backend", str(exc))
            return data
        try:
            schedules.scheduled_call(
                backend,
                data["task_path"],
                queue=data.get("queue"),
                priority=data.get("priority"),
                args=data.get("args"),
                kwargs=data.get("kwargs"),
            )
        except (InvalidTask, TypeError) as exc:
            raise forms.ValidationError(str(exc)) from None
        return data

    def _checked(self, check, value):
        try:
            check(value)
        except schedules.InvalidSchedule as exc:
            raise forms.ValidationError(str(exc)) from None
        return value


@admin.register(Schedule)
class ScheduleAdmin(admin.ModelAdmin):
    form = ScheduleForm
    list_display = [
        "name",
        "task_name",
        "cron",
        "time_zone",
        "enabled",
        "upcoming",
        "last_job",
        "from_settings",
    ]
    list_filter = ["enabled", "from_settings", "backend"]
    search_fields = ["name", "task_path"]
    ordering = ["name"]
    actions = ["enable", "disable"]

    def get_queryset(self, request):
        latest = Job.objects.filter(schedule=OuterRef("pk")).order_by("-scheduled_for")
        return (
            super()
            .get_queryset(request)
            .annotate(last_job_id=Subquery(latest.values("pk")[:1]))
        )

    def get_fields(self, request, obj=None):
        return [
            "name",
            "backend",
            "enabled",
            *SETTINGS_FIELDS,
            "upcoming",
            "last_job",
            "last_tick",
            "from_settings",
        ]

    def get_readonly_fields(self, request, obj=None):
        shown = ["upcoming", "last_job", "last_tick", "from_settings"]
        if obj is not None and obj.from_settings:  # rewritten at the next sync
            shown += ["name", "backend", *SETTINGS_FIELDS]
        return shown

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.from_settings:
            return False  # it would come back when a worker starts
        return super().has_delete_permission(request, obj)

    def save_model(self, request, obj, form, change):
        if {"cron", "time_zone"} & set(form.changed_data):
            obj.next_tick = None  # workers work it out again
        super().save_model(request, obj, form, change)

    @admin.display(description=_("task"))
    def task_name(self, schedule):
        return schedule.task_path.rpartition(".")[2]

    @admin.display(description=_("next tick"))
    def upcoming(self, schedule):
        if not schedule.enabled or schedule.pk is None:
            return "-"
        try:
            tick = schedules.next_tick(
                schedule.cron, schedule.time_zone, schedule.last_tick or timezone.now()
            )
        except (schedules.InvalidSchedule, ValueError, KeyError):
            return _("invalid")
        return timezone.localtime(tick).strftime("%Y-%m-%d %H:%M:%S")

    @admin.display(description=_("last job"))
    def last_job(self, schedule):
        job_id = getattr(schedule, "last_job_id", None)
        if job_id is None:
            return "-"
        url = reverse(f"{self.admin_site.name}:django_jobs_job_change", args=[job_id])
        return format_html('<a href="{}">#{}</a>', url, job_id)

    @admin.action(
        description=_("Enable the selected schedules"), permissions=["change"]
    )
    def enable(self, request, queryset):
        changed = queryset.filter(enabled=False).update(enabled=True, next_tick=None)
        self.message_user(
            request,
            ngettext("%d schedule enabled.", "%d schedules enabled.", changed)
            % changed,
        )

    @admin.action(
        description=_("Disable the selected schedules"), permissions=["change"]
    )
    def disable(self, request, queryset):
        changed = queryset.filter(enabled=True).update(enabled=False)
        self.message_user(
            request,
            ngettext("%d schedule disabled.", "%d schedules disabled.", changed)
            % changed,
        )
