"""What the console reads of a workflow's jobs, in a bounded number of queries.

- The list counts the jobs of a page of workflows per state in one grouped
  query (``GROUP BY workflow, state``, which the (workflow, state) index
  answers), not one per row.
- A workflow's page reads its jobs in one query and its edges in another,
  and derives its counts and its graph (``graph``) from those, so that a
  workflow of 5,000 jobs costs the same three queries as one of five.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, CharField, Count, F, Value, When
from django.utils import timezone

from ..models import Dependency, Job, Workflow
from ..states import DELAYED, State
from .graph import Edge, Node


@dataclass(slots=True)
class Counts:
    """A workflow's jobs per state. ``ready`` counts the delayed ones too."""

    waiting: int = 0
    ready: int = 0
    reserved: int = 0
    done: int = 0
    buried: int = 0

    @property
    def total(self) -> int:
        return self.waiting + self.ready + self.reserved + self.done + self.buried

    def add(self, state: str, count: int = 1) -> None:
        name = State.READY.value if state == DELAYED else state
        if name in STATES:
            setattr(self, name, getattr(self, name) + count)

    def items(self) -> list[tuple[str, int]]:
        """(state, count) in the order of a job's life."""
        return [(state, getattr(self, state)) for state in STATES]


#: The states counted, in the order of a job's life.
STATES = ("waiting", "ready", "reserved", "done", "buried")


def counts_of(
    workflow_ids: Iterable[int], using: str | None = None
) -> dict[int, Counts]:
    """The counts of each of ``workflow_ids``, from one grouped query."""
    ids = list(workflow_ids)
    counts = {pk: Counts() for pk in ids}
    if not ids:
        return counts
    rows = (
        Job.objects.using(using)
        .filter(workflow_id__in=ids)
        .order_by()
        .values_list("workflow_id", "state")
        .annotate(n=Count("pk"))
    )
    for workflow_id, state, n in rows:
        counts[workflow_id].add(state, n)
    return counts


@dataclass(slots=True)
class WorkflowJobs:
    """A workflow's jobs and edges, read once for its page."""

    nodes: list[Node]
    edges: list[Edge]

    @property
    def counts(self) -> Counts:
        counts = Counts()
        for node in self.nodes:
            counts.add(node.state)
        return counts

    def first_of(self, state: str) -> Node | None:
        """Its first job (by id) in ``state``: where a running workflow is."""
        return next((node for node in self.nodes if node.state == state), None)


def read(workflow: Workflow, using: str | None = None) -> WorkflowJobs:
    """Its jobs (one query) and the edges into them (another).

    Kept on the row, so that the page's fields and its graph share one read.
    """
    if "_console_jobs" not in workflow.__dict__:
        workflow._console_jobs = _read(workflow.pk, using or workflow._state.db)
    return workflow._console_jobs


def _read(workflow_id: int, db: str | None) -> WorkflowJobs:
    rows = (
        Job.objects.using(db)
        .filter(workflow_id=workflow_id)
        .order_by("pk")
        .values_list("pk", "task_path", shown_state("", timezone.now()))
    )
    nodes = [Node(pk, path, state) for pk, path, state in rows]
    edges = [
        Edge(up, down, name)
        for up, down, name in Dependency.objects.using(db)
        .filter(downstream__workflow_id=workflow_id)
        .values_list("upstream_id", "downstream_id", "name")
    ]
    return WorkflowJobs(nodes, edges)


def shown_state(prefix: str, now: datetime) -> Case:
    """``Job.display_state`` in SQL (of the job at ``prefix``, a relation
    path ending in ``__``, or of the row): a ready job due later is delayed.

    In SQL because reading 5,000 ``run_at`` values into datetimes costs
    more than the rest of a workflow's page.
    """
    return Case(
        When(
            **{f"{prefix}state": State.READY, f"{prefix}run_at__gt": now},
            then=Value(DELAYED),
        ),
        default=F(f"{prefix}state"),
        output_field=CharField(),
    )
