"""Is this deployment healthy? The answers behind ``manage.py jobs health``.

Two questions, each answered by one query, each failing with one line that
says why (``Unhealthy``), for container probes and for people:

- does the jobs' database answer, with the job table in it?
- (optionally) has a worker on this host sent a heartbeat recently? A worker
  that stopped beating is stuck or gone: the rescuer of another worker will
  take its jobs back after ``WORKER_TIMEOUT``, which is also the default age
  past which a heartbeat is too old here.
"""

from __future__ import annotations

import socket
from datetime import datetime

from django.db import DatabaseError, connections
from django.utils import timezone

from .durations import duration
from .models import Job, Worker
from .queue import not_migrated


class Unhealthy(Exception):
    """What is wrong, in one line."""


def this_host() -> str:
    """The host name a worker on this machine records (see its Worker row)."""
    return socket.gethostname()[:255]


def check_database(db: str) -> None:
    """The database answers, and its job table can be read (migrate ran)."""
    try:
        connections[db].ensure_connection()
    except DatabaseError as exc:
        raise Unhealthy(f"database {db!r} does not answer: {first_line(exc)}") from None
    try:
        Job.objects.using(db).exists()
    except DatabaseError as exc:
        raise Unhealthy(
            f"database {db!r} answers, but its job table cannot be read "
            f"(did migrate run?): {first_line(exc)}"
        ) from None


def database_problem(exc: DatabaseError, db: str) -> str | None:
    """What ``exc`` says in one line, if it is the deployment's problem rather
    than a bug: django-jobs' migrations not applied, or a database that does
    not answer. None for any other error."""
    if (missing := not_migrated(exc, db)) is not None:
        return str(missing)
    if connections[db].connection is None:  # connecting failed: no query ran
        return f"database {db!r} does not answer: {first_line(exc)}"
    return None


def first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def check_worker(
    db: str, backend: str, host: str, max_age: float, now: datetime | None = None
) -> Worker:
    """The freshest worker of ``backend`` on ``host``, if it beat within
    ``max_age`` seconds."""
    now = now or timezone.now()
    try:
        worker = (
            Worker.objects.using(db)
            .filter(backend=backend, hostname=host)
            .order_by("-last_heartbeat")
            .first()
        )
    except DatabaseError as exc:
        raise Unhealthy(
            f"the worker table of database {db!r} cannot be read: {first_line(exc)}"
        ) from None
    if worker is None:
        raise Unhealthy(f"no worker of backend {backend!r} runs on host {host!r}")
    silence = now - worker.last_heartbeat
    if silence.total_seconds() > max_age:
        raise Unhealthy(
            f"worker {worker.pk} on host {host!r} last sent a heartbeat "
            f"{duration(silence)} ago (more than {max_age:g} s)"
        )
    return worker
