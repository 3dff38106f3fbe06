"""Where new jobs go in a workflow's graph, decided as they are enqueued.

``place`` runs in the enqueuing transaction before the jobs are written:
it locks and reads their upstream jobs (``after()``), checks the workflow
they join and the cycle a running step's fan-out could make, and decides
their state; ``attach`` links the written jobs into the graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..exceptions import InvalidDependency, InvalidWorkflow
from ..models import Workflow
from ..scope import After
from ..states import State
from .dependencies import (
    end_downstream,
    graft,
    held_by,
    hold_upstream,
    link,
    waits_for,
)


@dataclass(frozen=True, slots=True)
class Placed:
    """Where new jobs go in the graph, decided before they are written."""

    workflow: int | None
    after: After | None
    #: The jobs waiting for the running step that enqueues these (locked):
    #: they will wait for these too (fan-out).
    held: tuple[int, ...] = ()
    waiting_for: int = 0
    #: Upstream jobs that failed already: the new jobs end at once.
    failed: tuple[int, ...] = ()
    expires_at: datetime | None = None

    def columns(self) -> dict[str, Any]:
        waits = self.waiting_for > 0 or bool(self.failed)
        return {
            "workflow_id": self.workflow,
            "waiting_for": self.waiting_for,
            "runs_anyway": bool(self.after and self.after.anyway),
            "downstream_count": len(self.held),
            "state": (State.WAITING if waits else State.READY).value,
            "expires_at": self.expires_at,
        }


def place(
    *,
    backend: str,
    workflow: int | None,
    after: After | None,
    step: int | None,
    count: int,
    expires_at: datetime | None,
    db: str,
) -> Placed:
    """Decide the state and links of ``count`` new jobs, in the enqueuing
    transaction (see ``insert``); the upstream jobs are locked until it ends."""
    upstream = hold_upstream(after, backend, count, db) if after else None
    if workflow is None and upstream is not None:
        workflow = upstream.workflow
    if workflow is not None:
        expires_at = _joining(workflow, backend, expires_at, db)
    if step is not None and after is not None:
        cycle = set(after.ids) & (waits_for([step], db) | {step})
        if cycle:
            raise InvalidDependency(
                f"after(): job {min(cycle)} waits for job {step}, which is running "
                "and whose waiting jobs would wait for this new one: a cycle."
            )
    return Placed(
        workflow=workflow,
        after=after,
        held=tuple(held_by(step, db)) if step is not None else (),
        waiting_for=upstream.unfinished if upstream else 0,
        failed=upstream.failed if upstream else (),
        expires_at=expires_at,
    )


def attach(
    placed: Placed, ids: Sequence[int | None], created: Sequence[bool], db: str
) -> None:
    """Link the jobs just written into the graph (see ``place``)."""
    new = [pk for pk, made in zip(ids, created, strict=True) if made and pk]
    if not new:
        return
    if placed.after is not None:
        link(placed.after, new, db)
    graft(placed.held, new, db)
    for failed in placed.failed:
        end_downstream({"id": failed}, db)


def _joining(
    workflow: int, backend: str, expires_at: datetime | None, db: str
) -> datetime | None:
    """Check that new jobs may join ``workflow``; their deadline in it."""
    row = (
        Workflow.objects.using(db)
        .filter(pk=workflow)
        .values("backend", "state", "deadline", "name")
        .first()
    )
    if row is None:
        raise InvalidWorkflow(f"Workflow {workflow} does not exist.")
    if row["backend"] != backend:
        raise InvalidWorkflow(
            f"Workflow {row['name']!r} belongs to backend {row['backend']!r}; "
            f"a job of backend {backend!r} cannot join it."
        )
    if row["state"] != Workflow.Status.RUNNING:
        raise InvalidWorkflow(
            f"Workflow {row['name']!r} has ended ({row['state']}); start a new "
            "one, or retry its failed steps."
        )
    deadline = row["deadline"]
    if deadline is None:
        return expires_at
    return deadline if expires_at is None else min(expires_at, deadline)
