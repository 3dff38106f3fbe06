"""The workflow actions: cancel, and retry the failed steps.

Each narrows the selection to the workflows it applies to, hands each one's
id to ``django_jobs.queue.workflows`` (the only code that changes a
workflow's or a job's state) and tells the user how many workflows changed
and how many were skipped. As with the job actions, the counts come from
the queue's own answers, so a workflow that ended between the click and the
write is reported as skipped, not as done.
"""

from __future__ import annotations

import logging

from django.contrib import messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import queue
from ..models import Job, Workflow
from ..states import State
from .compat import EVERYWHERE, action

logger = logging.getLogger("django_jobs.admin")

RUNNING = Workflow.Status.RUNNING
#: A workflow whose failed steps may be retried: one that failed, or one
#: still running beside a branch that failed. A cancelled one is not: the
#: steps it stopped did not fail.
RETRIABLE = (Workflow.Status.FAILED, Workflow.Status.RUNNING)


def selected_ids(queryset, **eligible) -> list[int]:
    """The ids of the selected workflows that qualify, newest first."""
    chosen = queryset.filter(**eligible).order_by("-pk")
    return list(chosen.values_list("pk", flat=True))


class WorkflowActions:
    """Actions of ``WorkflowAdmin``; each needs ``change_workflow``."""

    actions = ["cancel_workflows", "retry_failed_steps"]

    @action(permissions=["change"], description=_("Cancel"), location=EVERYWHERE)
    def cancel_workflows(self, request, queryset):
        db = queryset.db
        selected = queryset.count()
        ids = selected_ids(queryset, state=RUNNING)
        running = Job.objects.using(db).filter(
            workflow_id__in=ids, state=State.RESERVED, cancel_requested_at=None
        )
        stopping = bool(ids) and running.exists()
        jobs = sum(queue.workflows.cancel(pk, using=db) for pk in ids)
        cancelled = (
            Workflow.objects.using(db)
            .filter(pk__in=ids, state=Workflow.Status.CANCELLED)
            .count()
        )
        text = ngettext(
            "%(n)d workflow cancelled", "%(n)d workflows cancelled", cancelled
        ) % {"n": cancelled}
        text += " " + ngettext(
            "(%(n)d job cancelled or asked to stop)",
            "(%(n)d jobs cancelled or asked to stop)",
            jobs,
        ) % {"n": jobs}
        self.report_workflows(request, "cancel", text, cancelled, selected, "running")
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
        permissions=["change"],
        description=_("Retry the failed steps"),
        location=EVERYWHERE,
    )
    def retry_failed_steps(self, request, queryset):
        db = queryset.db
        selected = queryset.count()
        retried = workflows = 0
        for pk in selected_ids(queryset, state__in=RETRIABLE):
            steps = queue.workflows.retry_failed(pk, using=db)
            retried += steps
            workflows += bool(steps)
        text = ngettext(
            "%(n)d failed step retried", "%(n)d failed steps retried", retried
        ) % {"n": retried}
        text += " " + ngettext("in %(n)d workflow", "in %(n)d workflows", workflows) % {
            "n": workflows
        }
        self.report_workflows(request, "retry", text, workflows, selected, "failed")

    def report_workflows(
        self, request, verb: str, text: str, changed: int, selected: int, why: str
    ) -> None:
        """Say what an action did: the workflows changed and those skipped."""
        skipped = selected - changed
        if skipped:
            reason = {
                "running": _("not running"),
                "failed": _("no failed step to retry"),
            }[why]
            text += ", " + ngettext(
                "%(n)d skipped (%(why)s)", "%(n)d skipped (%(why)s)", skipped
            ) % {"n": skipped, "why": reason}
        level = messages.SUCCESS if changed and not skipped else messages.WARNING
        self.message_user(request, f"{text}.", level)
        logger.info(
            "%s workflows by %s: %d changed, %d skipped",
            verb,
            request.user,
            changed,
            skipped,
        )
