"""``jobs workflows``, and a job's place in its workflow for ``jobs show``.

The list reads the workflows first (newest first, through the workflow
table's ``state`` or ``name`` index), then counts the jobs of those it shows
in one grouped query (through the job table's workflow index): its cost
follows the rows printed, not the history kept. As for ``jobs show``, the
``--json`` documents only ever gain keys.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.core.management.base import CommandError
from django.db.models import Count, F, Q

from ..durations import clock, duration
from ..models import WORKFLOW_NAME_MAX, Dependency, Job, Workflow
from ..states import State
from .text import add_json, table

#: A workflow's counts of jobs, in ``jobs workflows`` and its ``--json``.
COUNTS = ("done", "failed", "waiting", "ready", "running", "total")

#: Which jobs each count counts: the job states, as ``jobs stats`` and the
#: console count them (``ready`` includes the delayed jobs; ``failed`` is
#: every buried job: failed for good, cancelled, expired, or ended by the
#: failure of a job it waited for), so that they add up to the total.
COUNTED = {
    "done": Q(state=State.DONE),
    "failed": Q(state=State.BURIED),
    "waiting": Q(state=State.WAITING),
    "ready": Q(state=State.READY),
    "running": Q(state=State.RESERVED),
}

#: Upstream and downstream jobs that ``jobs show`` lists; past that, counted.
NEIGHBOURS_SHOWN = 20

#: Longest name and reason in the table (``--json`` has them whole).
NAME_WIDTH, REASON_WIDTH = 40, 60


def add_parser(actions: Any) -> None:
    """The ``workflows`` subcommand's arguments."""
    listing = actions.add_parser(
        "workflows", help="The newest workflows, with their jobs counted."
    )
    listing.add_argument("--state", choices=Workflow.Status.values)
    listing.add_argument(
        "--name", help="The workflow's name; a trailing * matches a prefix."
    )
    listing.add_argument("--limit", type=int, default=50)
    add_json(listing)


def find(
    db: str, backend: str, *, state: str | None, name: str | None, limit: int
) -> list[Workflow]:
    """The newest workflows of ``backend``, filtered; a CommandError names
    the bad argument (the parser has checked ``state``)."""
    if limit < 1:
        raise CommandError("--limit must be at least 1.")
    rows = Workflow.objects.using(db).filter(backend=backend)
    if state:
        rows = rows.filter(state=state)
    if name is not None:
        if not name.strip("*").strip():
            raise CommandError("--name must not be empty.")
        if len(name.rstrip("*")) > WORKFLOW_NAME_MAX:
            raise CommandError(
                f"--name is {len(name)} characters long; a workflow name has at "
                f"most {WORKFLOW_NAME_MAX}."
            )
        if name.endswith("*"):
            rows = rows.filter(name__startswith=name.rstrip("*"))
        else:
            rows = rows.filter(name=name)
    return list(rows.order_by("-pk")[:limit])


def job_counts(workflow_ids: Iterable[int], db: str) -> dict[int, dict[str, int]]:
    """The ``COUNTS`` of each workflow, from one grouped query."""
    ids = list(workflow_ids)
    if not ids:
        return {}
    rows = (
        Job.objects.using(db)
        .filter(workflow_id__in=ids)
        .order_by()
        .values("workflow")
        .annotate(
            **{name: Count("pk", filter=where) for name, where in COUNTED.items()},
            total=Count("pk"),
        )
    )
    found = {row.pop("workflow"): row for row in rows}
    return {pk: found.get(pk, dict.fromkeys(COUNTS, 0)) for pk in ids}


def summary(
    workflow: Workflow, counts: dict[str, int], now: datetime
) -> dict[str, Any]:
    """A workflow as ``jobs workflows --json`` prints it. ``seconds_left``
    is the time to the deadline of a running workflow (negative once it has
    passed, until the rescuer fails it), else null."""
    left = None
    if workflow.state == Workflow.Status.RUNNING and workflow.deadline is not None:
        left = round((workflow.deadline - now).total_seconds(), 3)
    return {
        "id": workflow.pk,
        "name": workflow.name,
        "backend": workflow.backend,
        "state": workflow.state,
        **{name: counts[name] for name in COUNTS},
        "started_at": iso(workflow.created_at),
        "finished_at": iso(workflow.finished_at),
        "deadline": iso(workflow.deadline),
        "seconds_left": left,
        "reason": workflow.reason or None,
    }


def summaries(workflows: list[Workflow], db: str, now: datetime) -> list[dict]:
    counts = job_counts((workflow.pk for workflow in workflows), db)
    return [summary(workflow, counts[workflow.pk], now) for workflow in workflows]


def lines(docs: list[dict[str, Any]], now: datetime) -> list[str]:
    """The workflows as a table: counts, times (local, to the second), the
    time left of a running one, and why an ended one failed."""
    header = ["id", "name", "state", *COUNTS, "started", "finished", "deadline"]
    header.append("reason")
    rows = [
        [
            doc["id"],
            cut(doc["name"], NAME_WIDTH),
            doc["state"],
            *(doc[name] for name in COUNTS),
            when(doc["started_at"]),
            when(doc["finished_at"]),
            deadline_text(doc, now),
            cut(doc["reason"] or "", REASON_WIDTH),
        ]
        for doc in docs
    ]
    return table(header, rows)


def deadline_text(doc: dict[str, Any], now: datetime) -> str:
    """Time left for a running workflow; the deadline itself for one that
    has ended (when it had one)."""
    if doc["deadline"] is None:
        return "-"
    deadline = datetime.fromisoformat(doc["deadline"])
    if doc["seconds_left"] is None:
        return clock(deadline)
    if doc["seconds_left"] >= 0:
        return f"{duration(deadline - now)} left"
    return f"passed {duration(now - deadline)} ago"


def when(text: str | None) -> str:
    return "-" if text is None else clock(datetime.fromisoformat(text))


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


# A job's place in the graph (``jobs show``)


def graph_document(job: Job, db: str) -> dict[str, Any]:
    """A job's workflow, the jobs it waits for and those that wait for it,
    and the job whose failure ended it: the keys ``jobs show`` adds."""
    return {
        "workflow": workflow_of(job, db),
        "upstream": neighbours(job, db, upstream=True),
        "downstream": neighbours(job, db, upstream=False),
        "waiting_for": job.waiting_for,
        "runs_anyway": job.runs_anyway,
        "blocked_by": job.blocked_by_id,
    }


def workflow_of(job: Job, db: str) -> dict[str, Any] | None:
    if job.workflow_id is None:
        return None
    row = (
        Workflow.objects.using(db)
        .filter(pk=job.workflow_id)
        .values("id", "name", "state", "deadline", "reason")
        .first()
    )
    if row is None:  # deleted: the job keeps its id
        gone = dict.fromkeys(("name", "state", "deadline", "reason"))
        return {"id": job.workflow_id, **gone}
    return {**row, "deadline": iso(row["deadline"]), "reason": row["reason"] or None}


def neighbours(job: Job, db: str, *, upstream: bool) -> dict[str, Any]:
    """The first ``NEIGHBOURS_SHOWN`` jobs on one side of ``job``, in the
    order its upstream results are read (upstream) or enqueued (downstream),
    with the name of the edge; and how many there are in all."""
    if not upstream and not job.downstream_count:  # nobody ever waited for it
        return {"count": 0, "jobs": []}
    edge = "downstream" if upstream else "upstream"  # the end that is this job
    near = (
        Job.objects.using(db)
        .filter(**{f"{edge}_edges__{edge}_id": job.pk})
        .annotate(
            edge_name=F(f"{edge}_edges__name"),
            edge_position=F(f"{edge}_edges__position"),
        )
        .only("pk", "task_path", "state", "run_at")
        .order_by(*(("edge_position",) if upstream else ()), "pk")
    )
    first = list(near[: NEIGHBOURS_SHOWN + 1])
    count = len(first)
    if count > NEIGHBOURS_SHOWN:
        count = Dependency.objects.using(db).filter(**{f"{edge}_id": job.pk}).count()
    listed = [
        {
            "id": near_job.pk,
            "task": near_job.task_path,
            "state": near_job.display_state,
            "name": near_job.edge_name or None,
        }
        for near_job in first[:NEIGHBOURS_SHOWN]
    ]
    return {"count": count, "jobs": listed}


def graph_rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """The summary's lines about the workflow and what ended the job."""
    rows = []
    workflow = doc["workflow"]
    if workflow is not None:
        name = workflow["name"] or "(deleted)"
        state = f" ({workflow['state']})" if workflow["state"] else ""
        rows.append(("workflow", f"{name} #{workflow['id']}{state}"))
    if doc["blocked_by"] is not None:
        ended = doc["blocked_by"]
        text = f"#{ended}: it failed, so this job was not run; retrying #{ended}"
        rows.append(("blocked by", f"{text} makes it wait again"))
    return rows


def graph_lines(doc: dict[str, Any]) -> list[str]:
    """The jobs it waits for and those that wait for it, one a line."""
    found = []
    up, down = doc["upstream"], doc["downstream"]
    if up["count"]:
        title = f"Upstream, the jobs it waits for ({up['count']}"
        if doc["state"] == State.WAITING:
            title += f"; {doc['waiting_for']} not finished"
        found += ["", f"{title}):", *neighbour_lines(up)]
    if down["count"]:
        title = f"Downstream, the jobs that wait for it ({down['count']}):"
        found += ["", title, *neighbour_lines(down)]
    return found


def neighbour_lines(side: dict[str, Any]) -> list[str]:
    rows = [
        [
            f"#{each['id']}",
            each["task"].rpartition(".")[2],
            each["state"],
            each["name"] or "",
        ]
        for each in side["jobs"]
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    found = [
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    if side["count"] > len(side["jobs"]):
        found.append(f"  ... and {side['count'] - len(side['jobs'])} more")
    return found


# ``jobs stats``: the waiting jobs per queue


def with_waiting(report: dict[str, Any], backend: str, db: str) -> dict[str, Any]:
    """``report`` (``stats.backend_stats``) with the waiting jobs of each
    queue and in total, counted here if it does not count them itself (one
    grouped query, through the index of waiting jobs)."""
    if all("waiting" in row for row in (*report["queues"], report["total"])):
        return report
    counted = dict(
        Job.objects.using(db)
        .filter(backend=backend, state=State.WAITING)
        .order_by()
        .values_list("queue")
        .annotate(n=Count("pk"))
    )
    for row in report["queues"]:
        row.setdefault("waiting", counted.get(row["name"], 0))
    names = {row["name"] for row in report["queues"]}
    report["total"].setdefault(
        "waiting", sum(n for name, n in counted.items() if name in names)
    )
    return report
