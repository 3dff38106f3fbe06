"""Jobs that wait for jobs: the edges, and what a job's end does to them.

A job enqueued ``after`` others waits (``State.WAITING``) while any of them
has not finished: ``waiting_for`` counts them. Each of its upstream jobs
counts, in ``downstream_count``, the jobs that wait for it, so that the end
of a job that nobody waits for costs nothing here.

- A job that completes takes one off the count of each job that waits for
  it, and a count that reaches zero makes that job ready: in the statement
  that records the completion on PostgreSQL (``sql.completion``), in its
  transaction on SQLite (``count_down``). A parent's completion happens once
  (it is guarded by its claim), so each edge is counted down once.
- A job that fails for good (buried, cancelled, expired, deleted) ends the
  jobs that wait for it, and theirs, down the graph, in one statement per
  failed job (``end_downstream``); each is buried with an error that names
  the failed job, and remembers it (``blocked_by``). A job that ``runs
  anyway`` is counted down instead, as if its upstream had succeeded.
- Retrying (kicking) the failed job puts the jobs it ended back to waiting
  (``wait_again``), so that a fixed step resumes its workflow.

These run inside the transaction of the write that ended the job; every
statement is guarded by the state it expects, so a job is released or ended
once, whoever races.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connections
from django.db.models import F
from django.utils import timezone

from ..exceptions import InvalidDependency, UpstreamFailed, class_path
from ..models import Dependency, Job
from ..scope import After
from ..states import UNFINISHED, State
from . import mysql
from . import sql as statements
from .graph_sql import UNFINISHED_STATES, statement

#: The position of an edge that a running step added (fan-out): after the
#: edges given to ``after()``, in the order the jobs were enqueued.
GRAFTED = 2**31 - 1


@dataclass(frozen=True, slots=True)
class Upstream:
    """What the upstream jobs were when new jobs were attached to them."""

    #: Those that have not finished: the new jobs wait for them.
    unfinished: int
    #: Those that failed for good: the new jobs end (unless they run anyway).
    failed: tuple[int, ...]
    #: The workflow of the first upstream job that has one.
    workflow: int | None


def hold_upstream(after: After, backend: str, count: int, db: str) -> Upstream:
    """Count ``count`` new waiting jobs on each upstream job, and read its state.

    The write locks each upstream row until the enqueue commits, so an
    upstream job that completes meanwhile sees the new edges, and one that
    completed before is read as done: nothing can finish unseen in between.
    A claim skips a locked row (SKIP LOCKED): the workers are woken again
    for the ready ones, by notifications sent when the enqueue commits.
    """
    rows = statements.update_returning(
        Job.objects.using(db).filter(pk__in=after.ids),
        {"downstream_count": _plus("downstream_count", count)},
        ("id", "state", "backend", "workflow", "queue"),
    )
    found = {row["id"]: row for row in rows}
    for job_id in after.ids:
        row = found.get(job_id)
        if row is None:
            raise InvalidDependency(f"after(): job {job_id} does not exist.")
        if row["backend"] != backend:
            raise InvalidDependency(
                f"after(): job {job_id} belongs to backend {row['backend']!r}, "
                f"not {backend!r}: a job can only wait for jobs of its own backend."
            )
    ordered = [found[job_id] for job_id in after.ids]
    _wake_again(
        backend, [row["queue"] for row in ordered if row["state"] == State.READY], db
    )
    unfinished = sum(1 for row in ordered if row["state"] in UNFINISHED)
    failed = tuple(row["id"] for row in ordered if row["state"] == State.BURIED)
    if after.anyway:
        failed = ()
    workflow = next((row["workflow_id"] for row in ordered if row["workflow_id"]), None)
    return Upstream(unfinished, failed, workflow)


def _wake_again(backend: str, queues: list[str], db: str) -> None:
    """Wake workers for ready jobs a claim may have skipped while we held
    them (PostgreSQL: the notifications go out when the enqueue commits)."""
    connection = connections[db]
    if not queues or connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for name, jobs in sorted(Counter(queues).items()):
            cursor.execute("SELECT django_jobs_wake(%s, %s, %s)", [backend, name, jobs])


def _plus(column: str, count: int) -> F:
    return F(column) + count


def link(after: After, new_ids: Sequence[int], db: str) -> None:
    """Write the edges from each upstream job to each new job."""
    write_edges(
        [
            (upstream, job_id, name, position)
            for job_id in new_ids
            for position, (upstream, name) in enumerate(
                zip(after.ids, after.names, strict=True)
            )
        ],
        db,
    )


def held_by(step: int, db: str) -> list[int]:
    """The jobs waiting for the running job ``step``, locked until the
    enqueue commits: the jobs it enqueues hold them (see ``graft``)."""
    waiting = Job.objects.using(db).filter(
        upstream_edges__upstream_id=step, state=State.WAITING
    )
    if connections[db].vendor == "mysql":  # lock the jobs alone (not the edges)
        ids = list(waiting.values_list("pk", flat=True))
        jobs = Job.objects.using(db).filter(pk__in=ids, state=State.WAITING)
        return mysql.lock_matching(jobs) if ids else []
    return list(
        waiting.select_for_update()
        .order_by("pk")  # the same lock order in every enqueuing transaction
        .values_list("pk", flat=True)
    )


def graft(held: Sequence[int], new_ids: Sequence[int], db: str) -> None:
    """Make ``held`` (``held_by`` a running step) wait for ``new_ids`` too:
    a step is over when the jobs it started are (fan-out).

    They were locked before the new jobs were written (which count them in
    ``downstream_count``), so that none is released in between: a run of
    the step that lost its claim may still enqueue while what waits for the
    step is being released.
    """
    if not held or not new_ids:
        return
    write_edges(
        [(job_id, down, "", GRAFTED) for job_id in new_ids for down in held], db
    )
    Job.objects.using(db).filter(pk__in=held).update(
        waiting_for=_plus("waiting_for", len(new_ids))
    )


def write_edges(edges: Sequence[tuple[int, int, str, int]], db: str) -> None:
    """Insert ``(upstream, downstream, name, position)`` edges, however many,
    in one statement."""
    if not edges:
        return
    connection = connections[db]
    sql, params = statement(connection, "edges", False).bind(edges=json.dumps(edges))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


def waits_for(job_ids: Iterable[int], db: str) -> set[int]:
    """Every job that waits, directly or not, for one of ``job_ids``."""
    found: set[int] = set()
    frontier = set(job_ids)
    while frontier:
        frontier = (
            set(
                Dependency.objects.using(db)
                .filter(upstream_id__in=frontier)
                .values_list("downstream_id", flat=True)
            )
            - found
        )
        found |= frontier
    return found


# What a job's end does to the jobs that wait for it


def count_down(
    finished: Sequence[int],
    db: str,
    *,
    anyway_only: bool = False,
    exclude: Sequence[int] = (),
) -> int:
    """Count ``finished`` jobs off the jobs that wait for them; those left
    waiting for none become ready. ``anyway_only``: the finished jobs failed,
    so only jobs that run anyway are counted down; ``exclude``: jobs not to
    count down (already counted)."""
    if not finished:
        return 0
    connection = connections[db]
    sql, params = statement(connection, "release", anyway_only).bind(
        ids=json.dumps(list(finished)),
        exclude=json.dumps(list(exclude)),
        waiting=State.WAITING.value,
        ready=State.READY.value,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


def count_down_unseen(rows: Sequence[Sequence[Any]], db: str) -> int:
    """Release what a completion on PostgreSQL could not see (``rows``: its
    rows; see ``sql.completion``).

    A job enqueued to wait for a running job locks that job's row until it
    commits. A completion of that job which started meanwhile waits for the
    lock, then goes on with what it saw when it started: it counts the job's
    new waiting job (``downstream_count``, read after the wait) but not its
    edges, nor the waiting job's row, which it cannot count down. Those are
    counted down here, in the next statement, which sees them; what the
    completion counted down already is left alone. (Should the worker die
    between the two, the rescuer's net counts the waiting job again.)
    """
    late = [row[0] for row in rows if row[3] > row[-3]]
    if not late:
        return 0
    counted = {job_id for row in rows for job_id in (row[-2] or [])}
    return count_down(late, db, exclude=sorted(counted))


def still_held(upstream: Sequence[int], db: str) -> set[int]:
    """Those of ``upstream`` that a job still waits for."""
    if not upstream:
        return set()
    return set(
        Dependency.objects.using(db)
        .filter(upstream_id__in=upstream, downstream__state=State.WAITING)
        .values_list("upstream_id", flat=True)
    )


def end_downstream(failed: Job | dict[str, Any], db: str) -> list[dict[str, Any]]:
    """End every job that waits, directly or not, for the failed job (but
    those that run anyway, and what waits only through them): buried, with an
    error that names it. Returns the ended rows' ``id``, ``workflow_id`` and
    ``batch_id``; then counts the failed job and the ended ones off the jobs
    that run anyway."""
    root = failed["id"] if isinstance(failed, dict) else failed.pk
    connection = connections[db]
    values = {
        "root": root,
        "waiting": State.WAITING.value,
        "buried": State.BURIED.value,
        "now": connection.ops.adapt_datetimefield_value(timezone.now()),
        "error": json.dumps(_upstream_error(root, db)),
    }
    if connection.vendor == "mysql":
        ended = mysql.retry_deadlocks(connection, lambda: _end_locked(values, db))
    else:
        sql, params = statement(connection, "end", False).bind(**values)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            ended = [
                {"id": row[0], "workflow_id": row[1], "batch_id": row[2]}
                for row in cursor.fetchall()
            ]
    count_down([root, *(row["id"] for row in ended)], db, anyway_only=True)
    return ended


def _end_locked(values: dict[str, Any], db: str) -> list[dict[str, Any]]:
    """``end`` on MariaDB and MySQL, which cannot update in a WITH clause nor
    return what an UPDATE wrote: lock the doomed jobs, bury them by id, read
    them back, in one transaction."""
    connection = connections[db]
    with connection.cursor() as cursor:
        sql, params = statement(connection, "doomed", False).bind(**values)
        cursor.execute(sql, params)
        doomed = [row[0] for row in cursor.fetchall()]
        ids = doomed and mysql.lock_matching(
            Job.objects.using(db).filter(pk__in=doomed, state=State.WAITING)
        )
        if not ids:
            return []
        sql, params = statement(connection, "bury", False).bind(
            ids=json.dumps(ids), **values
        )
        cursor.execute(sql, params)
    return list(
        Job.objects.using(db)
        .filter(pk__in=ids)
        .order_by("pk")
        .values("id", "workflow_id", "batch_id")
    )


def wait_again(kicked: Sequence[int], db: str) -> list[int]:
    """The jobs that ``kicked`` jobs had ended wait for them again.

    Each waits for its upstream jobs that have not finished (the kicked one
    among them); so do the jobs that run anyway and still wait, which had
    counted the kicked job as finished, and a kicked job whose own upstream
    jobs have not all finished (one ended from ``waiting``: cancelled, past
    its deadline). A job whose other upstream failed too is ended again, by
    that one. Returns the ids of the jobs that wait again.
    """
    back = list(
        Job.objects.using(db)
        .filter(blocked_by__in=kicked, state=State.BURIED)
        .values_list("pk", flat=True)
    )
    anyway = list(
        Job.objects.using(db)
        .filter(
            upstream_edges__upstream_id__in=kicked,
            state=State.WAITING,
            runs_anyway=True,
        )
        .values_list("pk", flat=True)
    )
    early = list(  # kicked by hand while what they wait for has not finished
        Job.objects.using(db)
        .filter(
            pk__in=kicked,
            state=State.READY,
            upstream_edges__upstream__state__in=UNFINISHED,
        )
        .values_list("pk", flat=True)
        .distinct()
    )
    if not back and not anyway and not early:
        return []
    connection = connections[db]
    sql, params = statement(connection, "wait_again", False).bind(
        ids=json.dumps([*back, *anyway, *early]),
        waiting=State.WAITING.value,
        again=[State.BURIED.value, State.WAITING.value, State.READY.value],
        unfinished=UNFINISHED_STATES,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    still_failed = set(
        Dependency.objects.using(db)
        .filter(downstream_id__in=back, upstream__state=State.BURIED)
        .exclude(upstream_id__in=back)
        .values_list("upstream_id", flat=True)
    )
    for upstream in sorted(still_failed):
        end_downstream({"id": upstream}, db)
    return back


def _upstream_error(root: int, db: str) -> dict[str, Any]:
    """The error of a job ended by the failure of job ``root``."""
    row = (
        Job.objects.using(db)
        .filter(pk=root)
        .values("task_path", "state", "errors")
        .first()
    )
    if row is None:
        why = f"job {root} it waited for was deleted"
    else:
        errors = row["errors"] if isinstance(row["errors"], list) else []
        last = errors[-1] if errors and isinstance(errors[-1], dict) else {}
        lines = str(last.get("traceback", "")).strip().splitlines()
        because = f": {lines[-1]}" if lines else ""
        why = f"job {root} ({row['task_path']}) it waited for failed{because}"
    return {
        "exception_class_path": class_path(UpstreamFailed),
        "traceback": f"{UpstreamFailed.__name__}: {why}; it was not run.\n",
        "attempt": None,
        "worker_id": "",
        "at": timezone.now().isoformat(),
    }
