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
from . import key_sql, mysql
from . import sql as statements
from .columns import jobs_from_rows
from .guard import get_db
from .rows import bury_unrunnable, problem

logger = logging.getLogger("django_jobs.queue")

#: How many keys one claim looks at beyond its limit: keys at the front of
#: the line that cannot give a job (their jobs were deleted, or expired) are
#: passed over, and the claim still fills up.
SCAN_SLACK = 8
#: A key parked at its concurrency is looked at again after this even if no
#: trigger lifted its parking (a running job deleted by hand fires none).
PARK = timedelta(seconds=10)
#: How long a keyed queue with no job without a key waits before looking again.
UNKEYED_RECHECK = timedelta(seconds=1)

_warned: set[tuple[str, str]] = set()


def lock_queue(
    db: str, backend: str, name: str, limit: int
) -> tuple[Queue | None, list[QueueKey]]:
    """Lock a limited queue's row (None: it has none, or, but on PostgreSQL,
    another claim holds it) and, if it has limits per key and is not
    paused, the rows of the keys whose turn has come (at most
    ``scan_size(limit)``; rows another transaction holds are skipped): one
    statement on PostgreSQL. Called in the claim's transaction."""
    now, scan = timezone.now(), scan_size(limit)
    connection = connections[db]
    if connection.vendor == "postgresql":
        sql, params = key_sql.lock_queue(
            connection, backend=backend, name=name, now=now, scan=scan
        )
        rows = statements.fetch_all(connection, sql, params)
        if not rows:
            return None, []
        width = len(Queue._meta.concrete_fields)
        queue = Queue.from_db(db, _attnames(Queue), rows[0][:width])
        turns = [
            QueueKey.from_db(db, _attnames(QueueKey), row[width:])
            for row in rows
            if row[width] is not None
        ]
        return queue, turns
    # A row another claim holds is skipped (None: nothing to claim now), not
    # waited for: MariaDB's claim of a keyed queue is many statements, and a
    # claimer paused in it (a stopped process) would stall every other
    # worker's single-threaded supervisor, its touches and signals with it.
    queue = (
        Queue.objects.using(db)
        .select_for_update(skip_locked=True)
        .filter(backend=backend, name=name)
        .first()
    )
    if queue is None or queue.paused or not queue.keyed:
        return queue, []
    turns = (
        QueueKey.objects.using(db)
        .select_for_update(skip_locked=True)
        .filter(backend=backend, queue=name, due_at__lte=now)
        .order_by("due_at", "key")
    )
    return queue, list(turns[:scan])


def scan_size(limit: int) -> int:
    """How many keys a claim of ``limit`` jobs looks at, at most."""
    return limit + SCAN_SLACK


def _attnames(model) -> list[str]:
    return [field.attname for field in model._meta.concrete_fields]


def claim_keyed(
    db: str,
    worker_id: str,
    settings: Queue,
    turns: list[QueueKey],
    allowed: int,
    prepare: bool,
    token: str,
) -> list[Job]:
    """Reserve up to ``allowed`` jobs of the keyed queue ``settings`` from the
    keys ``turns`` (locked by ``lock_queue``), fairly across them and within
    their limits (see the module)."""
    if not turns:
        return []
    connection = connections[db]
    values = {
        "backend": settings.backend,
        "queue": settings.name,
        "token": token,
        "worker_id": worker_id,
        "worker_json": json.dumps(worker_id),
        "limit": allowed,
    }
    if connection.vendor == "postgresql" and all(turn.key for turn in turns):
        rows = _claim_in_one(connection, settings, turns, values, prepare)
    else:
        rows = _claim_step_by_step(db, settings, turns, values, prepare)
    jobs = []
    for job in jobs_from_rows(connection, rows):
        if reason := problem(job):
            bury_unrunnable(job, reason, worker_id=worker_id, using=db)
        else:
            jobs.append(job)
    if any(not job.limit_key for job in jobs):
        _warn_keyless(settings)
    jobs.sort(key=lambda job: (-job.priority, job.run_at, job.pk))
    return jobs


def _claim_in_one(connection, settings, turns, values, prepare) -> list[tuple]:
    """PostgreSQL: the rest of the claim in one statement (``key_sql``)."""
    now = timezone.now()
    window = _window(settings, now)
    used = [turn.window_count if turn.window_start == window else 0 for turn in turns]
    rate, limit = settings.key_rate_limit, values["limit"]
    sql, params = key_sql.claim_keys(
        connection,
        ids=[turn.pk for turn in turns],
        keys=[turn.key for turn in turns],
        rooms=[limit if rate is None else min(limit, rate - n) for n in used],
        used=used,
        conc=settings.key_concurrency,
        rate=rate,
        window=window,
        window_end=_window_end(settings, window),
        parked=now + PARK,
        now=now,
        **values,
    )
    return statements.fetch_all(connection, sql, params, prepare)


def _claim_step_by_step(db, settings, turns, values, prepare) -> list[tuple]:
    """The claim one statement at a time (SQLite, MariaDB and MySQL, or the
    turn of the jobs without a key): count, pick per key, deal, reserve,
    write the keys."""
    connection = connections[db]
    running = _running(db, settings, turns)
    # The jobs start after they were counted: a job that ended before the
    # count ended before their start (what the tests read from the rows).
    now = timezone.now()
    window = _window(settings, now)
    allowed = values["limit"]
    rooms = [room(turn, settings, allowed, running, window) for turn in turns]
    at = connection.ops.adapt_datetimefield_value(now)
    values = {**values, "now": at, "started": now}
    rows = _reserve(connection, turns, rooms, values, prepare)
    taken = Counter(_keys_of(rows))
    looked = looked_at(turns, taken, allowed)
    _write_turns(db, settings, looked, taken, running, window, now)
    return rows


def _window(settings: Queue, now: datetime) -> datetime | None:
    if settings.key_rate_limit is None:
        return None
    return window_start(now, settings.key_rate_period or 1)


def _window_end(settings: Queue, window: datetime | None) -> datetime | None:
    if window is None:
        return None
    return window + timedelta(seconds=settings.key_rate_period or 1)


def _warn_keyless(settings: Queue) -> None:
    """Say once per process and queue that a keyed queue runs jobs without a
    key (their tasks name no ``limit_key``)."""
    if (settings.backend, settings.name) in _warned:
        return
    _warned.add((settings.backend, settings.name))
    logger.warning(
        "Queue %r has limits per key, but holds jobs without a key "
        "(their tasks name no limit_key): no limit per key holds for them.",
        settings.name,
    )


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


def looked_at(turns: list[QueueKey], taken: Counter, allowed: int) -> list[QueueKey]:
    """The keys the claim dealt to or passed over: all of them if it reserved
    fewer than ``allowed`` jobs, else those up to the last key it served in
    the first round (the keys after it keep their place in the line)."""
    if sum(taken.values()) < allowed:
        return turns
    last = max((i for i, turn in enumerate(turns) if taken.get(turn.key)), default=-1)
    return turns[: last + 1]


def _reserve(connection, turns, rooms, values, prepare) -> list[tuple]:
    """Pick each key's jobs (a statement per key), deal, reserve them."""
    open_ = [(t.key, r) for t, r in zip(turns, rooms, strict=True) if r > 0]
    picked = []
    for key, room_ in open_:
        sql, params = key_sql.picks(connection, key=key, room=room_, **values)
        picked.append([pk for (pk,) in statements.fetch_all(connection, sql, params)])
    dealt = deal(picked, values["limit"])
    if not dealt:
        return []
    if connection.vendor == "mysql":  # the picks are locked: reserve, read back
        ids = sorted(dealt)
        mysql.reserve_ids(
            connection,
            ids,
            now=values["started"],
            token=values["token"],
            worker_id=values["worker_id"],
        )
        return mysql.read_back(connection, ids, Job._meta.concrete_fields)
    sql, params = key_sql.claim_ids(connection, dealt, **values)
    return statements.fetch_all(connection, sql, params, prepare)


def _keys_of(rows: list[tuple]) -> list[str]:
    """The limit_key of each reserved row (every column is returned)."""
    position = [f.name for f in Job._meta.concrete_fields].index("limit_key")
    return [row[position] for row in rows]


def _write_turns(db, settings, looked, taken, running, window, now) -> None:
    """Send the keys looked at to the back of the line, with their window
    counts, parking and holds, and their next ready job."""
    for turn in looked:
        _after_claim(turn, settings, taken.get(turn.key, 0), running, window, now)
        if turn.key:
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
        turn.due_at = turn_at(turn)
        QueueKey.objects.using(db).filter(pk=turn.pk).update(
            **{name: getattr(turn, name) for name in WRITTEN}
        )


#: What the claim writes on a key row.
WRITTEN = (
    "served_at", "held_until", "parked_until", "window_start", "window_count",
    "next_at", "due_at",
)  # fmt: skip


def _after_claim(turn, settings, taken, running, window, now) -> None:
    turn.served_at = now
    if not turn.key:  # the jobs without a key: look again soon if none
        turn.next_at = now
        turn.parked_until = None if taken else now + UNKEYED_RECHECK
        return
    turn.held_until = turn.parked_until = None
    if settings.key_rate_limit is not None:
        if turn.window_start != window:
            turn.window_start, turn.window_count = window, 0
        turn.window_count += taken
        if turn.window_count >= settings.key_rate_limit:
            turn.held_until = _window_end(settings, window)
    concurrency = settings.key_concurrency
    if concurrency is not None and running.get(turn.key, 0) + taken >= concurrency:
        turn.parked_until = now + PARK


def turn_at(turn: QueueKey) -> datetime | None:
    """When a key's turn comes: not before its next job, its last service, the
    end of its spent window and its parking; None without a next job."""
    if turn.next_at is None:
        return None
    times = (turn.next_at, turn.served_at, turn.held_until, turn.parked_until)
    return max(time for time in times if time is not None)


#: Idle key rows are kept this long after their last turn and window: at
#: least a day, the longest window, so that no window's count is lost.
IDLE_KEYS_KEPT = timedelta(days=1)


def prune_keys(
    *, backend: str, now: datetime, batch_size: int = 1000, using: str | None = None
) -> int:
    """Delete up to ``batch_size`` rows of keys that have no ready job and
    whose last turn and window ended more than ``IDLE_KEYS_KEPT`` ago; how
    many. A key that gets a job again gets a new row (the trigger)."""
    db = get_db(using)
    before = now - IDLE_KEYS_KEPT
    idle = (
        QueueKey.objects.using(db)
        .filter(backend=backend, next_at=None)
        .exclude(key="")
        .exclude(window_start__gte=before)
        .exclude(served_at__gte=before)
    )
    ids = list(idle.values_list("pk", flat=True)[:batch_size])
    return idle.filter(pk__in=ids).delete()[0] if ids else 0
