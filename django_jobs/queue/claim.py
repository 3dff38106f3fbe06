"""Reserving ready jobs for a worker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from django.db import connections
from django.utils import timezone

from .. import sql as statements
from ..models import Job
from ..states import State
from .guard import get_db

# Claim


def claim(
    *,
    worker_id: str,
    queues: Sequence[str] | None = None,
    limit: int = 1,
    backend: str = "default",
    using: str | None = None,
    prepare: bool = False,
) -> list[Job]:
    """Reserve up to ``limit`` due jobs for ``worker_id``, best first.

    One statement: it picks the candidates in claim order (priority, then
    run_at, then id) and marks them reserved. On PostgreSQL the candidates are
    locked with ``FOR UPDATE SKIP LOCKED``, so concurrent workers skip each
    other's rows instead of waiting or double-claiming; SQLite runs one write
    statement at a time, so the same statement is race-free there too.
    """
    if limit < 1:
        return []
    db = get_db(using)
    connection = connections[db]
    sql, params = claim_statement(
        connection, worker_id=worker_id, queues=queues, limit=limit, backend=backend
    )
    rows = statements.fetch_all(connection, sql, params, prepare)
    jobs = statements.jobs_from_rows(connection, rows)
    jobs.sort(key=lambda job: (-job.priority, job.run_at, job.pk))
    return jobs


def claim_statement(
    connection,
    *,
    worker_id: str,
    queues: Sequence[str] | None,
    limit: int,
    backend: str,
) -> tuple[str, list[Any]]:
    """The claim's SQL and parameters (also used to EXPLAIN it in the tests)."""
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    params = [State.READY.value, backend, now, *(queues or ()), backend, limit]
    params += [uuid.uuid4().hex, worker_id, now, now, now, json.dumps(worker_id)]
    return statements.claim_query(connection, len(queues or ())), params
