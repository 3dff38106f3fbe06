"""Waking the workers that can take new jobs, and only those (PostgreSQL).

A job that becomes ready calls ``django_jobs_wake`` (migrations 0010 and
0011) from the job table's triggers, inside the writing transaction: it
NOTIFYs, each on its own channel, just enough workers with room
(``Worker.room``, which their claims and heartbeats keep) to take the new
jobs, in random order. Before it, every listening worker woke for every job
and ran a claim that all but one lost: with 16 idle workers, 16 claims per
job.

A dead worker's row stays until the rescuer presumes it dead, but takes no
wake-ups meant for the living:

- a worker whose LISTEN session has ended is passed over. Each worker's
  listener session holds a session-level advisory lock, ``(LISTENER_LOCK,
  its server pid)``, and records that pid in the row (``listener_pid``, see
  ``worker/listener.py``); for each candidate it reaches, the function tries
  to take that lock, shared: a lock nobody holds means the session has ended
  (the lock dies with it). A worker that dies while its host lives (SIGKILL,
  the OOM killer, a crash) loses its sessions at once, so this rule acts
  within milliseconds. A try costs microseconds whatever the number of
  sessions (reading ``pg_stat_activity`` costs about a microsecond per
  session, each transaction), needs no privilege, and fails at once on a
  live session; on an ended one it holds the shared lock until the
  enqueuing transaction ends, which stops nobody (a later listener that
  gets the same pid meanwhile records no pid, and is woken as below);
- a worker silent for two heartbeats has no room (the live workers'
  heartbeats set it to zero, see ``worker/fleet.py``): this rule covers a
  host that vanished, whose sessions the server keeps until TCP keepalives
  expire, a row that names no session (NULL: a worker older than the
  column, or one registered again while its listener stayed connected), and
  a dead worker's pid that the server gave to another worker's listener.

What a notification cannot announce, because no statement makes it happen,
is a delayed job coming due; and a worker may be woken for a job it can no
longer take (it filled up in the moment between). ``wake_due`` covers both:
the worker that holds the fleet's lease runs it every poll interval, and it
wakes workers with room for the ready jobs it finds due.
"""

from __future__ import annotations

import hashlib

from django.db import connections
from django.utils import timezone

from ..models import Job, Queue
from ..states import State
from . import sql as statements
from .guard import get_db

#: The channel of workers that predate targeted wakes (room NULL).
SHARED_CHANNEL = "django_jobs_job"
#: The first key of the advisory lock a listener session holds while it
#: lives, ``(LISTENER_LOCK, its server pid)``: "djob" in ASCII. Migration
#: 0011's django_jobs_wake has the same number.
LISTENER_LOCK = 0x646A6F62
#: How many due jobs one look counts, at most, per backend.
DUE_LOOK = 100


def channel(worker_id: str) -> str:
    """The channel a worker LISTENs on; django_jobs_wake computes the same."""
    digest = hashlib.md5(worker_id.encode(), usedforsecurity=False).hexdigest()
    return f"django_jobs_{digest[:16]}"


def wake_due(backend: str = "default", *, using: str | None = None) -> int:
    """Wake workers with room for the ready, due jobs; how many were woken.

    One statement: the first ``DUE_LOOK`` jobs in claim order (the claim's
    index), counted per queue, skipping paused queues and queues at their
    concurrency limit (their jobs wait for a running one to end, which wakes
    its own worker). Only PostgreSQL has notifications: elsewhere, 0.
    """
    connection = connections[get_db(using)]
    if connection.vendor != "postgresql":
        return 0
    now = timezone.now()
    rows = statements.fetch_all(
        connection, _due_sql(connection), [backend, backend, now, now, backend, backend]
    )
    return sum(woken for (woken,) in rows)


def _due_sql(connection) -> str:
    qn = connection.ops.quote_name
    job = qn(Job._meta.db_table)
    queue = qn(Queue._meta.db_table)
    col = {f.name: qn(f.column) for f in Job._meta.concrete_fields}
    ready = f"'{State.READY.value}'"
    reserved = f"'{State.RESERVED.value}'"
    # Written as the claim's candidates are, so that it walks the same index.
    return (
        f"SELECT django_jobs_wake(%s, due.{col['queue']}, count(*)::integer)"
        f" FROM (SELECT {col['queue']} FROM {job}"
        f" WHERE {col['state']} = {ready} AND {col['backend']} = %s"
        f" AND {col['run_at']} <= %s"
        f" AND ({col['expires_at']} IS NULL OR {col['expires_at']} > %s)"
        f" ORDER BY {col['priority']} DESC, {col['run_at']}, {col['id']}"
        f" LIMIT {DUE_LOOK}) AS due"
        f" WHERE due.{col['queue']} NOT IN (SELECT q.{qn('name')} FROM {queue} q"
        f" WHERE q.{qn('backend')} = %s AND (q.{qn('paused')}"
        f" OR q.{qn('max_concurrency')} <= (SELECT count(*) FROM {job} r"
        f" WHERE r.{col['state']} = {reserved} AND r.{col['backend']} = %s"
        f" AND r.{col['queue']} = q.{qn('name')})))"
        f" GROUP BY due.{col['queue']}"
    )


def any_ready(
    backend: str = "default",
    *,
    queues: list[str] | None = None,
    skip: list[str] | None = None,
    using: str | None = None,
) -> bool:
    """Whether a ready job is due in these queues: one autocommit SELECT.

    What a polling worker (MariaDB/MySQL: no notifications) asks before it
    claims, once a claim came back empty: there, a claim that finds nothing
    still costs a transaction of four statements (``SET autocommit``, the
    locking SELECT, ``COMMIT``, ``SET autocommit``). Paused and full queues
    are not excluded: their jobs cost one claim that finds nothing.
    """
    now = timezone.now()
    jobs = Job.objects.using(get_db(using)).filter(
        state=State.READY.value, backend=backend, run_at__lte=now
    )
    jobs = jobs.exclude(expires_at__lte=now)
    if queues:
        jobs = jobs.filter(queue__in=queues)
    if skip:
        jobs = jobs.exclude(queue__in=skip)
    return jobs.exists()
