"""The job actions: bury, retry, cancel, delete and change priority.

Each action narrows the selection to the jobs it applies to, hands their ids
to ``django_jobs.queue`` (the only code that changes job state) in batches,
and tells the user how many jobs changed and how many were skipped. The
count comes from the queue operation itself, so a job that moved on between
the click and the write is reported as skipped, not as done.

Every action is offered on the job list and on a job's page (Django's
change-form actions; ``compat`` provides them on Django 5.2). Delete and
change priority ask first, on a page of their own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from django import forms
from django.contrib import messages
from django.contrib.admin import helpers
from django.db.models import Q
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import queue
from ..states import State
from ..validation import PRIORITY_MAX, PRIORITY_MIN
from .compat import CHANGE_FORM_ACTION, EVERYWHERE, action

logger = logging.getLogger("django_jobs.admin")

CHUNK = 1000


class PriorityForm(forms.Form):
    priority = forms.IntegerField(
        label=_("New priority"),
        min_value=PRIORITY_MIN,
        max_value=PRIORITY_MAX,
        help_text=_("From %(min)d to %(max)d; higher runs first.")
        % {"min": PRIORITY_MIN, "max": PRIORITY_MAX},
    )


def chunks(queryset) -> Iterator[list[int]]:
    """The selected ids, newest first, ``CHUNK`` at a time (keyset pagination)."""
    ids = queryset.order_by("-pk").values_list("pk", flat=True)
    last = None
    while chunk := list((ids if last is None else ids.filter(pk__lt=last))[:CHUNK]):
        yield chunk
        last = chunk[-1]


def apply(operation: Callable[[list[int]], int], queryset, eligible: Q) -> tuple:
    """Run ``operation`` on the eligible jobs; return (changed, skipped)."""
    selected = queryset.count()
    changed = sum(operation(ids) for ids in chunks(queryset.filter(eligible)))
    return changed, selected - changed


class JobActions:
    """Actions of ``JobAdmin``; every one needs the matching model permission."""

    actions = [
        "bury_jobs",
        "retry_jobs",
        "cancel_jobs",
        "reprioritise_jobs",
        "delete_jobs",
    ]

    @action(permissions=["change"], description=_("Bury"), location=EVERYWHERE)
    def bury_jobs(self, request, queryset):
        changed, skipped = apply(queue.bury, queryset, queue.unheld("bury"))
        self.report(request, "bury", changed, skipped)

    @action(
        permissions=["change"],
        description=_("Retry now (buried or delayed)"),
        location=EVERYWHERE,
    )
    def retry_jobs(self, request, queryset):
        delayed = Q(state=State.READY, run_at__gt=timezone.now())
        retriable = Q(state=State.BURIED) | delayed
        changed, skipped = apply(queue.kick, queryset, retriable)
        self.report(request, "retry", changed, skipped)

    @action(permissions=["change"], description=_("Cancel"), location=EVERYWHERE)
    def cancel_jobs(self, request, queryset):
        running = Q(state=State.RESERVED, cancel_requested_at=None)
        stopping = queryset.filter(running).exists()
        unstarted = queue.unheld("cancel")  # waiting, ready or delayed
        changed, skipped = apply(queue.cancel, queryset, unstarted | running)
        self.report(request, "cancel", changed, skipped)
        if stopping:
            self.message_user(
                request,
                _(
                    "Running jobs are stopped by their worker within a few "
                    "seconds, then buried as cancelled."
                ),
                messages.INFO,
            )

    @action(
        permissions=["change"], description=_("Change priority"), location=EVERYWHERE
    )
    def reprioritise_jobs(self, request, queryset):
        form = PriorityForm(request.POST if "post" in request.POST else None)
        if not form.is_valid():
            return self.confirmation(request, queryset, "reprioritise_jobs", form)
        priority = form.cleaned_data["priority"]
        changed, skipped = apply(
            lambda ids: queue.reprioritise(ids, priority),
            queryset,
            queue.unheld("reprioritise"),
        )
        self.report(request, "reprioritise", changed, skipped)
        return None

    @action(permissions=["delete"], description=_("Delete"), location=EVERYWHERE)
    def delete_jobs(self, request, queryset):
        if "post" not in request.POST:
            return self.confirmation(request, queryset, "delete_jobs")
        # A running job is not deleted (it is cancelled instead).
        changed, skipped = apply(queue.delete, queryset, queue.unheld("delete"))
        self.report(request, "delete", changed, skipped)
        return HttpResponseRedirect(
            reverse(f"{self.admin_site.name}:django_jobs_job_changelist")
        )

    def report(self, request, verb: str, changed: int, skipped: int) -> None:
        text = {
            "bury": ngettext("%d job buried", "%d jobs buried", changed),
            "retry": ngettext("%d job retried", "%d jobs retried", changed),
            "cancel": ngettext("%d job cancelled", "%d jobs cancelled", changed),
            "delete": ngettext("%d job deleted", "%d jobs deleted", changed),
            "reprioritise": ngettext(
                "%d job reprioritised", "%d jobs reprioritised", changed
            ),
        }[verb] % changed
        if skipped:
            text += ", " + (
                ngettext(
                    "%d skipped (not in a state that allows it)",
                    "%d skipped (not in a state that allows it)",
                    skipped,
                )
                % skipped
            )
        level = messages.SUCCESS if changed and not skipped else messages.WARNING
        self.message_user(request, f"{text}.", level)
        logger.info(
            "%s by %s: %d changed, %d skipped", verb, request.user, changed, skipped
        )

    def confirmation(self, request, queryset, action: str, form=None):
        """The page that asks before a delete or a change of priority."""
        field = "action"
        if CHANGE_FORM_ACTION in request.POST:
            field = CHANGE_FORM_ACTION
        context = {
            **self.admin_site.each_context(request),
            "title": _("Delete jobs") if form is None else _("Change priority"),
            "opts": self.opts,
            "action": action,
            "action_field": field,
            "form": form,
            "count": queryset.count(),
            "jobs": queryset.order_by("-pk")[:20],
            "selected": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across") == "1",
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(
            request, "admin/django_jobs/job/action_confirmation.html", context
        )
