"""Keeping a workflow's row in step with its jobs.

A workflow runs while any of its jobs has not finished. ``settle_workflows``
runs after each write that finishes jobs of workflows, once that write is
done: one guarded UPDATE per call marks the workflows among them whose jobs
have all finished, succeeded or failed, so that of any number of processes
that see the last jobs end, one writes it. The rescuer settles running
workflows too (``settle_running``), so that one missed by a crash, or by two
transactions that each saw the other's job unfinished, still ends.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Case, Exists, OuterRef, Value, When
from django.utils import timezone

from ..models import Job, Workflow
from ..states import UNFINISHED, State


def settle_workflows(workflow_ids: Iterable[int], *, using: str) -> int:
    """End the sealed workflows among ``workflow_ids`` whose jobs have all
    finished: succeeded if every one is done, else failed. One statement while they
    run; returns how many it ended."""
    ids = sorted(set(workflow_ids))
    if not ids:
        return 0
    jobs = Job.objects.using(using).filter(workflow=OuterRef("pk"))
    finished = (
        Workflow.objects.using(using)
        .filter(pk__in=ids, state=Workflow.Status.RUNNING, sealed_at__isnull=False)
        .exclude(Exists(jobs.filter(state__in=UNFINISHED)))
    )
    now = timezone.now()
    ended = finished.update(
        state=Case(
            When(Exists(jobs.filter(state=State.BURIED)), then=Value(FAILED)),
            default=Value(Workflow.Status.SUCCEEDED.value),
        ),
        finished_at=now,
    )
    if ended:
        failed = Workflow.objects.using(using).filter(
            pk__in=ids, state=FAILED, finished_at=now, reason=""
        )
        for workflow_id in failed.values_list("pk", flat=True):
            _say_why(workflow_id, using)
    return ended


FAILED = Workflow.Status.FAILED.value


def settle_running(*, backend: str = "default", using: str) -> int:
    """Settle every running workflow of ``backend`` (the rescuer's net)."""
    running = Workflow.objects.using(using).filter(
        backend=backend, state=Workflow.Status.RUNNING
    )
    return settle_workflows(running.values_list("pk", flat=True), using=using)


def _say_why(workflow_id: int, using: str) -> None:
    """Write why a workflow failed: its first job that failed for good (not
    one ended because it waited for that one)."""
    first = (
        Job.objects.using(using)
        .filter(workflow_id=workflow_id, state=State.BURIED, blocked_by=None)
        .order_by("finished_at", "pk")
        .values("pk", "task_path", "errors")
        .first()
    )
    if first is None:
        return
    errors = first["errors"] if isinstance(first["errors"], list) else []
    last = errors[-1] if errors and isinstance(errors[-1], dict) else {}
    lines = str(last.get("traceback", "")).strip().splitlines()
    because = f": {lines[-1]}" if lines else ""
    Workflow.objects.using(using).filter(pk=workflow_id, reason="").update(
        reason=f"failed at step {first['task_path']} (job {first['pk']}){because}"
    )


def reopen(workflow_ids: Iterable[int], *, using: str) -> int:
    """Workflows whose jobs were retried run again (their deadline, if it
    has passed, is lifted: retrying is asking for the run to go on)."""
    ids = sorted(set(workflow_ids))
    if not ids:
        return 0
    ended = (
        Workflow.objects.using(using)
        .filter(pk__in=ids)
        .exclude(state=Workflow.Status.RUNNING)
    )
    ended.filter(deadline__lte=timezone.now()).update(deadline=None)
    return ended.update(state=Workflow.Status.RUNNING, finished_at=None, reason="")
