"""A queue's limits page: its limits, for the whole queue and per key, and
its busiest keys (running jobs, ready jobs, starts in the current window).

Seeing it needs the dashboard's permission; saving needs ``change_queue``
and goes through ``django_jobs.queue.configure``. Its queries stay on
indexes: the running jobs by key (``django_jobs_job_key_running``), the
ready jobs of the keys shown (``django_jobs_job_key_claim``), and the key
rows of the queue (their unique index).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import queue
from ..exceptions import UnknownQueue
from ..models import Job, Queue, QueueKey
from ..rates import BadRate, describe_rate, parse_rate, window_start
from ..states import State
from .display import console_context

#: How many keys the page lists, busiest first.
BUSIEST = 20


class QueueLimitsForm(forms.ModelForm):
    """The model's own fields, but the rate per key as people write it."""

    key_rate_limit = forms.CharField(
        label=Queue._meta.get_field("key_rate_limit").verbose_name,
        required=False,
        help_text=gettext_lazy(
            "Such as 1000/hour, 100/minute, 5/second or 2/day: fixed windows, "
            "aligned to the clock (UTC)."
        ),
    )

    class Meta:
        model = Queue
        fields = ["max_concurrency", "rate_limit", "key_concurrency"]

    def clean_max_concurrency(self) -> int | None:
        return _at_least_one(self.cleaned_data["max_concurrency"])

    def clean_key_concurrency(self) -> int | None:
        return _at_least_one(self.cleaned_data["key_concurrency"])

    def clean_rate_limit(self) -> float | None:
        rate = self.cleaned_data["rate_limit"]
        if rate is not None and rate <= 0:  # the model allows any float
            raise forms.ValidationError(_("A rate limit must be more than zero."))
        return rate

    def clean_key_rate_limit(self) -> str | None:
        text = self.cleaned_data["key_rate_limit"].strip()
        if not text:
            return None
        try:
            parse_rate(text)
        except BadRate as exc:
            raise forms.ValidationError(str(exc)) from None
        return text


def _at_least_one(value: int | None) -> int | None:
    if value == 0:
        raise forms.ValidationError(_("At least 1; leave it empty for no limit."))
    return value


def limits_page(model_admin, request) -> Any:
    """The limits page of the queue named in the query string (GET), or save
    its form (POST) and come back to it."""
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    name = request.GET.get("queue", "")
    backend = request.GET.get("backend") or "default"
    try:
        queue.check_queue(name, backend, queue.get_db())
    except UnknownQueue as exc:
        raise Http404(str(exc)) from None
    row = Queue.objects.filter(backend=backend, name=name).first()
    can_change = model_admin.has_change_permission(request)
    if request.method == "POST":
        if not can_change:
            raise PermissionDenied
        form = QueueLimitsForm(request.POST, instance=row or Queue())
        if form.is_valid():
            queue.configure(name, backend=backend, **_limits(form.cleaned_data))
            model_admin.message_user(
                request, _("Limits of queue %s saved.") % name, messages.SUCCESS
            )
            return HttpResponseRedirect(request.get_full_path())
    else:
        form = QueueLimitsForm(instance=row or Queue(), initial=_initial(row))
    now = timezone.now()
    context = {
        **model_admin.admin_site.each_context(request),
        **console_context("dashboard", now),
        "title": _("Limits of queue %s") % name,
        "opts": model_admin.opts,
        "queue_name": name,
        "backend": backend,
        "form": form,
        "can_change": can_change,
        "keys": busiest_keys(backend, name, row, now),
        "keyed": row is not None and row.keyed,
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_jobs/queue/limits.html", context)


def _limits(cleaned: dict[str, Any]) -> dict[str, Any]:
    """The form's values as ``queue.configure`` takes them."""
    return {
        "max_concurrency": cleaned["max_concurrency"],
        "rate_limit": cleaned["rate_limit"],
        "key_concurrency": cleaned["key_concurrency"],
        "key_rate_limit": cleaned["key_rate_limit"],
    }


def _initial(row: Queue | None) -> dict[str, Any]:
    if row is None:
        return {}
    return {"key_rate_limit": describe_rate(row.key_rate_limit, row.key_rate_period)}


def busiest_keys(
    backend: str, name: str, row: Queue | None, now: datetime
) -> list[dict[str, Any]]:
    """The keys with the most running jobs, then the most starts in the
    current window: each with its running and ready jobs and window use."""
    jobs = Job.objects.filter(backend=backend, queue=name).exclude(limit_key="")
    running = dict(
        jobs.filter(state=State.RESERVED)
        .values_list("limit_key")
        .annotate(n=Count("id"))
        .order_by("-n", "limit_key")[:BUSIEST]
    )
    used: dict[str, int] = {}
    if row is not None and row.key_rate_limit is not None:
        window = window_start(now, row.key_rate_period or 1)
        used = dict(
            QueueKey.objects.filter(
                backend=backend, queue=name, window_start=window, window_count__gt=0
            )
            .exclude(key="")
            .order_by("-window_count", "key")
            .values_list("key", "window_count")[:BUSIEST]
        )
    keys = sorted(
        set(running) | set(used),
        key=lambda key: (-running.get(key, 0), -used.get(key, 0), key),
    )[:BUSIEST]
    ready = dict(
        jobs.filter(state=State.READY, limit_key__in=keys)
        .values_list("limit_key")
        .annotate(n=Count("id"))
        .order_by()
    )
    return [
        {
            "key": key,
            "running": running.get(key, 0),
            "ready": ready.get(key, 0),
            "used": used.get(key, 0),
        }
        for key in keys
    ]
