"""Workflows: starting one, placing new jobs in it, cancelling, retrying,
and the deadline for the whole.

A job joins a workflow when it is enqueued in one (``workflows.workflow()``,
or by a running job of it); it waits for the jobs ``after()`` names. What a
job's end does to the jobs that wait for it is ``queue.dependencies``';
keeping the workflow's row in step is ``queue.workflow_rows``'.
"""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Count, Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from ..exceptions import InvalidWorkflow, WorkflowDeadlineMissed
from ..models import WORKFLOW_NAME_MAX, Dependency, Job, Workflow
from ..states import UNFINISHED, State
from .decided import OUTCOME_FIELDS, Decided, decided
from .dependencies import end_downstream
from .errors import unstarted_error
from .expressions import JSONAppend
from .guard import change, get_db
from .workflow_rows import settle_workflows


def start(
    name: str,
    *,
    backend: str = "default",
    deadline: datetime | None = None,
    using: str | None = None,
) -> Workflow:
    """A new running workflow: its row, which the jobs enqueued in it join.

    It cannot end before it is sealed (``seal``): its first jobs may finish
    before the last ones are enqueued.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidWorkflow("A workflow needs a name (a non-empty string).")
    if len(name) > WORKFLOW_NAME_MAX:
        raise InvalidWorkflow(
            f"A workflow name has at most {WORKFLOW_NAME_MAX} characters; "
            f"{name[:40]!r}... has {len(name)}."
        )
    if deadline is not None and deadline <= timezone.now():
        raise InvalidWorkflow(
            f"Workflow {name!r}: its deadline {deadline.isoformat()} has passed."
        )
    return Workflow.objects.using(get_db(using)).create(
        name=name, backend=backend, deadline=deadline
    )


def seal(workflow_id: int, *, using: str | None = None) -> None:
    """No more jobs join the workflow but from its running steps; it ends
    once its jobs have (at once, if they already have)."""
    db = get_db(using)
    Workflow.objects.using(db).filter(pk=workflow_id, sealed_at=None).update(
        sealed_at=timezone.now()
    )
    settle_workflows([workflow_id], using=db)


# Operations on a whole workflow


def cancel(workflow_id: int, *, using: str | None = None) -> int:
    """Cancel a workflow: its waiting and ready jobs end (cancelled), its
    running jobs are asked to stop. Returns how many jobs it touched."""
    from .console import cancel as cancel_jobs

    db = get_db(using)
    with transaction.atomic(using=db):
        ended = (
            Workflow.objects.using(db)
            .filter(pk=workflow_id, state=Workflow.Status.RUNNING)
            .update(
                state=Workflow.Status.CANCELLED,
                finished_at=timezone.now(),
                reason="cancelled",
            )
        )
        if not ended:
            return 0
        unfinished = Job.objects.using(db).filter(
            workflow_id=workflow_id,
            state__in=(State.WAITING, State.READY, State.RESERVED),
        )
        return cancel_jobs(list(unfinished.values_list("pk", flat=True)), using=db)


def retry_failed(workflow_id: int, *, using: str | None = None) -> int:
    """Run a workflow's failed steps again: each job that failed for good
    (not one ended because it waited for it) is kicked, and the jobs it had
    ended wait for it again; a cancelled job waits again for what it waited
    for. The workflow runs again (a deadline that passed is lifted). Returns
    how many steps."""
    from .console import kick

    db = get_db(using)
    with transaction.atomic(using=db):
        failed = list(
            Job.objects.using(db)
            .filter(workflow_id=workflow_id, state=State.BURIED, blocked_by=None)
            .values_list("pk", flat=True)
        )
        if not failed:
            return 0
        return kick(failed, using=db)  # and the workflow runs again


def missed_deadlines(*, backend: str = "default", using: str | None = None) -> int:
    """Fail the running workflows whose deadline passed (``miss_deadlines``);
    how many it failed."""
    return len(miss_deadlines(backend=backend, using=using)[0])


def miss_deadlines(
    *, backend: str = "default", using: str | None = None
) -> tuple[list[int], Decided]:
    """Fail the running workflows whose deadline passed: their waiting and
    ready jobs end as expired, their running jobs are asked to stop (and
    their workers record that). The workflows it failed, and the jobs it
    ended, each as written (then "expired")."""
    db = get_db(using)
    now = timezone.now()
    late = Workflow.objects.using(db).filter(
        backend=backend, state=Workflow.Status.RUNNING, deadline__lte=now
    )
    failed: list[int] = []
    ended = Decided()
    for workflow in late:
        with transaction.atomic(using=db):
            if _miss(workflow, now, db, ended):
                failed.append(workflow.pk)
    return failed, ended


def _miss(workflow: Workflow, now: datetime, db: str, ended: Decided) -> bool:
    jobs = Job.objects.using(db).filter(workflow=workflow)
    unfinished = jobs.filter(state__in=(State.WAITING, State.READY, State.RESERVED))
    at = unfinished.order_by("state", "pk").values("pk", "task_path", "state").first()
    done = jobs.filter(state=State.DONE).count()
    total = jobs.count()
    where = f" at step {at['task_path']} (job {at['pk']}, {at['state']})" if at else ""
    reason = (
        f"missed its deadline {workflow.deadline.isoformat()}{where}; "
        f"{done} of {total} jobs done"
    )
    changed = (
        Workflow.objects.using(db)
        .filter(pk=workflow.pk, state=Workflow.Status.RUNNING)
        .update(state=Workflow.Status.FAILED, finished_at=now, reason=reason)
    )
    if not changed:
        return False
    error = unstarted_error(WorkflowDeadlineMissed, f"its workflow {reason}", now)
    waiting = list(
        unfinished.filter(state__in=(State.WAITING, State.READY)).values_list(
            "pk", flat=True
        )
    )
    expired = change(
        "expire",
        waiting,
        using=db,
        values={"finished_at": now, "errors": JSONAppend("errors", error)},
        unless_moved=Q(state__in=(State.WAITING, State.READY)),
        returning=OUTCOME_FIELDS,
    )
    ended.jobs.extend(decided(row, "expired", error) for row in expired.rows)
    running = list(unfinished.filter(state=State.RESERVED).values_list("pk", flat=True))
    if running:
        change(
            "request_cancel",
            running,
            using=db,
            values={"cancel_requested_at": now},
            unless_moved=Q(cancel_requested_at=None),
        )
    return True


def repair(*, backend: str = "default", using: str | None = None) -> int:
    """The rescuer's net under workflows: a waiting job whose count of
    unfinished upstream jobs is off is counted again; one left waiting for
    none runs, or ends if one of them failed (and it does not run anyway).

    Nothing in the normal course leaves a count off (each write is guarded
    and transactional); a retry racing the end of another upstream job can.
    Costs one query over the waiting jobs (an index of their own).
    """
    db = get_db(using)
    edges = Dependency.objects.using(db).filter(downstream=OuterRef("pk"))
    unfinished = (
        edges.filter(upstream__state__in=UNFINISHED)
        .order_by()
        .values("downstream")
        .annotate(n=Count("pk"))
        .values("n")
    )
    off = (
        Job.objects.using(db)
        .filter(backend=backend, state=State.WAITING)
        .annotate(left=Coalesce(Subquery(unfinished), 0))
        .exclude(waiting_for=F("left"))
        .values_list("pk", "waiting_for", "left", "runs_anyway")
    )
    repaired = 0
    for job_id, counted, left, anyway in off:
        repaired += (
            Job.objects.using(db)
            .filter(pk=job_id, state=State.WAITING, waiting_for=counted)
            .update(waiting_for=left)
        )
        failed = Dependency.objects.using(db).filter(
            downstream_id=job_id, upstream__state=State.BURIED
        )
        root = failed.values_list("upstream_id", flat=True).first()
        if root is not None and not anyway:  # a failure's end it missed
            end_downstream({"id": root}, db)
        elif not left:
            change("unblock", [job_id], using=db, unless_moved=Q(waiting_for=0))
    return repaired


def prune(
    before: datetime, *, backend: str = "default", using: str | None = None
) -> int:
    """Delete workflows that ended before ``before`` and have no job left
    (their jobs outlived their retention): the pruner's last step."""
    db = get_db(using)
    ended = (
        Workflow.objects.using(db)
        .filter(backend=backend, finished_at__lt=before)
        .exclude(state=Workflow.Status.RUNNING)
    )
    empty = ended.exclude(Exists(Job.objects.using(db).filter(workflow=OuterRef("pk"))))
    return empty.delete()[0]
