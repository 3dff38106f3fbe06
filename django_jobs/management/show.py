"""``jobs show ID``: what a job's page in the console shows, for a shell.

A job of a workflow also shows the workflow, the jobs it waits for and
those that wait for it (``workflows.graph_document``).

``job_document`` gathers it as plain data (the ``--json`` output, a stable
document whose keys are only ever added); ``job_lines`` lays it out for
reading, errors and output newest first, and leaves out what the job left
empty, as the page does.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils import timezone

from .. import stats
from ..durations import moment_text
from ..models import Batch, Job, Schedule, Worker
from ..sizes import limits_text, usage_rows
from ..states import MEANINGS, State
from .text import describe_progress, table
from .workflows import graph_document, graph_lines, graph_rows

#: Children listed by id; past that, only counted.
CHILDREN_SHOWN = 20

TIMES = [
    ("enqueued_at", "enqueued"),
    ("run_at", "run at"),
    ("started_at", "started"),
    ("last_attempted_at", "last attempt"),
    ("reserved_until", "reserved until"),
    ("finished_at", "finished"),
    ("expires_at", "expires"),
    ("cancel_requested_at", "cancel asked"),
]


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def job_document(job: Job, db: str) -> dict[str, Any]:
    """Everything about ``job`` and the jobs, batch and schedule around it."""
    running = job.state == State.RESERVED
    return {
        "id": job.pk,
        "backend": job.backend,
        "queue": job.queue,
        "task": job.task_path,
        "state": job.display_state,
        "cancelling": running and job.cancel_requested_at is not None,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "progress": job.progress,
        "args": job.args,
        "kwargs": job.kwargs,
        "return_value": job.return_value if job.state == State.DONE else None,
        "checkpoint": job.checkpoint,
        "errors": job.errors,
        "output": job.logs,
        "usage": job.usage,
        "max_memory": job.max_memory,
        "max_cpu_seconds": job.max_cpu_seconds,
        **{field: iso(getattr(job, field)) for field, _label in TIMES},
        "worker": job.reserved_by or None,
        "worker_alive": worker_alive(job, db),
        "workers": job.worker_ids,
        "parent": job.parent_id,
        "children": children(job, db),
        "batch": batch(job, db),
        "schedule": schedule(job, db),
        "scheduled_for": iso(job.scheduled_for),
        "ttr": job.ttr,
        "on_failure": job.on_failure,
        "unique_key": job.unique_key or None,
        "limit_key": job.limit_key or None,
        **graph_document(job, db),
    }


def worker_alive(job: Job, db: str) -> bool | None:
    if not job.reserved_by:
        return None
    return Worker.objects.using(db).filter(pk=job.reserved_by).exists()


def children(job: Job, db: str) -> dict[str, Any]:
    ids = Job.objects.using(db).filter(parent=job).order_by("pk")
    first = list(ids.values_list("pk", flat=True)[: CHILDREN_SHOWN + 1])
    count = len(first) if len(first) <= CHILDREN_SHOWN else ids.count()
    return {"count": count, "ids": first[:CHILDREN_SHOWN]}


def batch(job: Job, db: str) -> dict[str, Any] | None:
    if job.batch_id is None:
        return None
    found = (
        Batch.objects.using(db)
        .annotate(**stats.BATCH_COUNTS)
        .filter(pk=job.batch_id)
        .first()
    )
    if found is None:
        return None
    return {
        "id": found.pk,
        **stats.batch_summary(found),
        "completed_at": iso(found.completed_at),
        "callback_job": found.callback_job_id,
    }


def schedule(job: Job, db: str) -> dict[str, Any] | None:
    if job.schedule_id is None:
        return None
    name = (
        Schedule.objects.using(db)
        .filter(pk=job.schedule_id)
        .values_list("name", flat=True)
        .first()
    )
    return {"id": job.schedule_id, "name": name}


# Text


def job_lines(doc: dict[str, Any], now: datetime | None = None) -> list[str]:
    """The document laid out for reading: a summary, then the long parts."""
    now = now or timezone.now()
    return [
        f"Job {doc['id']}: {doc['task']}",
        *fields(summary(doc, now)),
        *graph_lines(doc),
        *data(doc),
        *errors(doc["errors"], now),
        *usage(doc["usage"]),
        *output(doc["output"]),
    ]


def summary(doc: dict[str, Any], now: datetime) -> list[tuple[str, str]]:
    state = f"{doc['state']} ({MEANINGS[doc['state']]})"
    if doc["cancelling"]:
        state += "; cancelling: its worker is stopping it"
    rows = [
        ("state", state),
        ("queue", f"{doc['queue']} (backend {doc['backend']})"),
        ("priority", str(doc["priority"])),
        ("attempts", f"{doc['attempts']} of {doc['max_attempts']}"),
    ]
    if doc["progress"] is not None:
        rows.append(("progress", describe_progress(doc["progress"])))
    for field, label in TIMES:
        if doc[field] is not None:
            rows.append((label, moment_text(datetime.fromisoformat(doc[field]), now)))
    rows += related(doc)
    options = f"ttr {doc['ttr']} s, on failure {doc['on_failure']}"
    if doc["unique_key"]:
        options += f", unique key {doc['unique_key']}"
    if doc["limit_key"]:
        options += f", limit key {doc['limit_key']}"
    if doc["runs_anyway"]:
        options += ", runs anyway (even if a job it waits for fails)"
    if limits := limits_text(doc["max_memory"], doc["max_cpu_seconds"]):
        options += f", limits {limits}"
    rows.append(("options", options))
    return rows


def related(doc: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if doc["worker"]:
        gone = "" if doc["worker_alive"] else " (gone)"
        rows.append(("worker", f"{doc['worker']}{gone}"))
    if doc["workers"]:
        rows.append(("all workers", ", ".join(doc["workers"])))
    if doc["parent"] is not None:
        rows.append(("parent", f"#{doc['parent']}"))
    kids = doc["children"]
    if kids["count"]:
        listed = ", ".join(f"#{pk}" for pk in kids["ids"])
        more = ", ..." if kids["count"] > len(kids["ids"]) else ""
        rows.append(("children", f"{kids['count']}: {listed}{more}"))
    if doc["batch"] is not None:
        text = f"#{doc['batch']['id']}: {stats.describe_batch(doc['batch'])}"
        rows.append(("batch", text))
    if doc["schedule"] is not None:
        tick = doc["scheduled_for"] or "-"
        rows.append(("schedule", f"{doc['schedule']['name']} (tick {tick})"))
    return rows + graph_rows(doc)


def fields(rows: list[tuple[str, str]]) -> list[str]:
    width = max(len(label) for label, _value in rows)
    return [f"  {label.ljust(width)}  {value}" for label, value in rows]


def data(doc: dict[str, Any]) -> list[str]:
    parts = [("Arguments", doc["args"]), ("Keyword arguments", doc["kwargs"])]
    if doc["state"] == State.DONE:
        parts.append(("Return value", doc["return_value"]))
    if doc["checkpoint"] is not None:
        parts.append(("Checkpoint", doc["checkpoint"]))
    lines = []
    for title, value in parts:
        lines += ["", f"{title}:", *indent(as_json(value))]
    return lines


def as_json(value: Any) -> str:
    """On one line if it is short, else indented for reading."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False)
    if len(text) <= 76:
        return text
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def errors(entries: list[dict[str, Any]], now: datetime) -> list[str]:
    lines = ["", "Errors, newest first:"] if entries else []
    for error in reversed(entries):
        attempt = error.get("attempt")
        head = f"Attempt {attempt}" if attempt else "No attempt"
        head += f": {error.get('exception_class_path', '?')}"
        if error.get("worker_id"):
            head += f", worker {error['worker_id']}"
        if error.get("at"):
            head += f", {when(error['at'], now)}"
        lines += [f"  {head}", *indent(error.get("traceback", ""), 4)]
    return lines


def when(text: str, now: datetime) -> str:
    """An error's time as the summary shows times, if it parses."""
    try:
        return moment_text(datetime.fromisoformat(text), now)
    except (TypeError, ValueError):
        return str(text)


def usage(entries: Any) -> list[str]:
    """What each attempt used, newest first (a table)."""
    rows = usage_rows(entries)
    if not rows:
        return []
    header = ["attempt", "peak memory", "CPU", "wall"]
    return ["", "Usage, newest first:", *indent("\n".join(table(header, rows)))]


def output(logs: list[dict[str, Any]]) -> list[str]:
    lines = ["", "Output, newest first:"] if logs else []
    for log in reversed(logs):
        note = " (the last part only)" if log.get("truncated") else ""
        lines += [f"  Attempt {log.get('attempt')}{note}:"]
        lines += indent(log.get("text", ""), 4)
    return lines


def indent(text: str, by: int = 2) -> list[str]:
    return [" " * by + line for line in text.rstrip("\n").splitlines()]
