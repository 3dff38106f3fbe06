"""The claim of a queue with limits per key (docs/limits.rst, "Limits per key").

Called by ``claim._claim_limited`` with the queue's row locked, so one claim
of a queue runs at a time. Its keys take turns: the claim locks the rows of
the keys whose turn has come (``QueueKey.due_at``, earliest first, a bounded
number; rows another transaction holds are skipped, not waited for), then
counts their running jobs (after the lock, so that a job that stops running
meanwhile finds the key's row locked and lifts its parking once the claim
commits), gives each key its room (its concurrency and rate window allow),
and deals the keys' jobs one per key per round, each key's in claim order.
Every key it looked at up to the last it served goes to the back of the line
(``served_at`` now); a key at its concurrency is parked until one of its jobs
stops running (a trigger); a key whose window is spent is held until the
window ends.

Jobs without a key in a keyed queue take a turn of their own, as the key
"" (no limits per key); the claim looks for them again at most every
``UNKEYED_RECHECK`` while there are none.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import connections
from django.db.models import Count, Min
from django.utils import timezone

from ..models import Job, Queue, QueueKey
from ..rates import window_start
from ..states import State
from . import key_sql
from . import sql as statements
from .columns import jobs_from_rows
from .rows import bury_unrunnable, problem

logger = logging.getLogger("django_jobs.queue")

#: The fewest keys one claim looks at; it looks at twice its limit if more.
MIN_SCAN = 16
#: A key parked at its concurrency is looked at again after this even if no
#: trigger lifted its parking (a running job deleted by hand fires none).
PARK = timedelta(seconds=10)
#: How long a keyed queue with no job without a key waits before looking again.
UNKEYED_RECHECK = timedelta(seconds=1)

_warned: set[tuple[str, str]] = set()


def claim_keyed(
    db: str, worker_id: str, settings: Queue, allowed: int, prepare: bool, token: str
) -> list[Job]:
    """Reserve up to ``allowed`` jobs of the keyed queue ``settings``, fairly
    across its keys and within its limits per key (see the module)."""
    now = timezone.now()
    turns = list(
        QueueKey.objects.using(db)
        .select_for_update(skip_locked=True)
        .filter(backend=settings.backend, queue=settings.name, due_at__lte=now)
        .order_by("due_at", "key")[: max(MIN_SCAN, 2 * allowed)]
    )
    if not turns:
        return []
    running = _running(db, settings, turns)
    # The jobs start after they were counted: a job that ended before the
    # count ended before their start (what the tests read from the rows).
    now = timezone.now()
    window = (
        window_start(now, settings.key_rate_period) if settings.key_rate_limit else None
    )
    rooms = [room(turn, settings, allowed, running, window) for turn in turns]
    connection = connections[db]
    values = {
        "backend": settings.backend,
        "queue": settings.name,
        "now": connection.ops.adapt_datetimefield_value(now),
        "token": token,
        "worker_id": worker_id,
        "worker_json": json.dumps(worker_id),
        "limit": allowed,
    }
    rows = _reserve(connection, turns, rooms, values, prepare)
    jobs = []
    for job in jobs_from_rows(connection, rows):
        if reason := problem(job):
            bury_unrunnable(job, reason, worker_id=worker_id, using=db)
        else:
            jobs.append(job)
    taken = Counter(str(row_key) for row_key in _keys_of(connection, rows))
    looked = looked_at(turns, rooms, taken, allowed)
    _write_turns(db, settings, looked, taken, running, window, now)
    if taken.get("") and (settings.backend, settings.name) not in _warned:
        _warned.add((settings.backend, settings.name))
        logger.warning(
            "Queue %r has limits per key, but holds jobs without a key "
            "(their tasks name no limit_key): no limit per key holds for them.",
            settings.name,
        )
    jobs.sort(key=lambda job: (-job.priority, job.run_at, job.pk))
    return jobs


def _running(db: str, settings: Queue, turns: list[QueueKey]) -> dict[str, int]:
    """The running jobs of each key (those with a key), through the partial
    index ``django_jobs_job_key_running``."""
    keys = [turn.key for turn in turns if turn.key]
    if settings.key_concurrency is None or not keys:
        return {}
    counts = (
        Job.objects.using(db)
        .filter(
            backend=settings.backend,
            queue=settings.name,
            state=State.RESERVED,
            limit_key__in=keys,
        )
        .exclude(limit_key="")
        .values_list("limit_key")
        .annotate(n=Count("id"))
    )
    return dict(counts)


def room(
    turn: QueueKey,
    settings: Queue,
    allowed: int,
    running: dict[str, int],
    window: datetime | None,
) -> int:
    """How many jobs of ``turn``'s key may start now (0 or more)."""
    if not turn.key:
        return allowed
    left = allowed
    if settings.key_concurrency is not None:
        left = min(left, settings.key_concurrency - running.get(turn.key, 0))
    if settings.key_rate_limit is not None:
        used = turn.window_count if turn.window_start == window else 0
        left = min(left, settings.key_rate_limit - used)
    return max(left, 0)


def deal(picked: Sequence[Sequence[int]], limit: int) -> list[int]:
    """The ids of each key's picks (in turn order), one per key per round,
    ``limit`` at most: the fairness rule."""
    dealt: list[int] = []
    for round_ in range(max((len(ids) for ids in picked), default=0)):
        for ids in picked:
            if round_ < len(ids) and len(dealt) < limit:
                dealt.append(ids[round_])
    return dealt


def looked_at(
    turns: list[QueueKey], rooms: list[int], taken: Counter, allowed: int
) -> list[QueueKey]:
    """The keys the claim dealt to or passed over: all of them if it reserved
    fewer than ``allowed`` jobs, else those up to the last key it served in
    the first round (the keys after it keep their place in the line)."""
    if sum(taken.values()) < allowed:
        return turns
    last = max((i for i, turn in enumerate(turns) if taken.get(turn.key)), default=-1)
    return turns[: last + 1]


def _reserve(connection, turns, rooms, values, prepare) -> list[tuple]:
    """Pick and reserve the jobs: one statement on PostgreSQL (unless the
    jobs without a key have a turn), one per key and one to reserve on SQLite."""
    open_ = [(t.key, r) for t, r in zip(turns, rooms, strict=True) if r > 0]
    if not open_:
        return []
    if connection.vendor == "postgresql" and all(key for key, _ in open_):
        sql, params = key_sql.claim_dealt(
            connection,
            keys=[key for key, _ in open_],
            rooms=[r for _, r in open_],
            **values,
        )
        return statements.fetch_all(connection, sql, params, prepare)
    picked = []
    for key, room_ in open_:
        sql, params = key_sql.picks(connection, key=key, room=room_, **values)
        picked.append([pk for (pk,) in statements.fetch_all(connection, sql, params)])
    dealt = deal(picked, values["limit"])
    if not dealt:
        return []
    sql, params = key_sql.claim_ids(connection, dealt, **values)
    return statements.fetch_all(connection, sql, params, prepare)


def _keys_of(connection, rows: list[tuple]) -> list[str]:
    """The limit_key of each reserved row (every column is returned)."""
    position = [f.name for f in Job._meta.concrete_fields].index("limit_key")
    return [row[position] for row in rows]


def _write_turns(db, settings, looked, taken, running, window, now) -> None:
    """Send the keys looked at to the back of the line, with their window
    counts, parking and holds, and their next ready job."""
    for turn in looked:
        _after_claim(turn, settings, taken.get(turn.key, 0), running, window, now)
    keyed = [turn for turn in looked if turn.key]
    connection = connections[db]
    if keyed and connection.vendor == "postgresql":
        sql, params = key_sql.write_turns(
            connection,
            ids=[turn.pk for turn in keyed],
            times=[
                [getattr(turn, name) for turn in keyed] for name in key_sql.TURN_FIELDS
            ],
            counts=[turn.window_count for turn in keyed],
        )
        statements.fetch_all(connection, sql, params)
        keyed = []
    for turn in keyed:
        turn.next_at = (
            Job.objects.using(db)
            .filter(
                backend=settings.backend,
                queue=settings.name,
                state=State.READY,
                limit_key=turn.key,
            )
            .exclude(limit_key="")
            .aggregate(first=Min("run_at"))["first"]
        )
    for turn in looked:
        if turn.key and connection.vendor == "postgresql":
            continue
        turn.due_at = turn_at(turn)
        QueueKey.objects.using(db).filter(pk=turn.pk).update(
            **{name: getattr(turn, name) for name in WRITTEN}
        )


#: What the claim writes on a key row (besides PostgreSQL's single statement).
WRITTEN = (*key_sql.TURN_FIELDS, "window_count", "next_at", "due_at")


def _after_claim(turn, settings, taken, running, window, now) -> None:
    turn.served_at = now
    if not turn.key:  # the jobs without a key: look again soon if none
        turn.next_at = now
        turn.parked_until = None if taken else now + UNKEYED_RECHECK
        return
    if settings.key_rate_limit is not None:
        if turn.window_start != window:
            turn.window_start, turn.window_count = window, 0
        turn.window_count += taken
        spent = turn.window_count >= settings.key_rate_limit
        period = timedelta(seconds=settings.key_rate_period or 1)
        turn.held_until = window + period if spent else None
    if settings.key_concurrency is not None:
        busy = running.get(turn.key, 0) + taken >= settings.key_concurrency
        turn.parked_until = now + PARK if busy else None


def turn_at(turn: QueueKey) -> datetime | None:
    """When a key's turn comes: not before its next job, its last service, the
    end of its spent window and its parking; None without a next job."""
    if turn.next_at is None:
        return None
    times = (turn.next_at, turn.served_at, turn.held_until, turn.parked_until)
    return max(time for time in times if time is not None)
