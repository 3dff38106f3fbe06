"""Done jobs out of the hot table (PostgreSQL): the history partitions.

A done job can never change again (``states.TRANSITIONS``: only a delete),
so it need not stay where claims, completions and their indexes and vacuum
work. On PostgreSQL, done jobs move, in short batches a few seconds after
they finish, from ``django_jobs_job`` into one table per day of finish time
(``django_jobs_job_d20261206``), each an inheritance child of the job table
with a CHECK constraint on its state and its day. So:

- every reader keeps reading ``django_jobs_job`` (the ORM's ``Job``): a
  query on a parent table reads its children too, and the planner skips the
  days (and, for a query of live states, all of them) whose CHECK rules
  the rows out. Results, the console, batches, workflows, metrics and the
  ``jobs`` commands see a done job wherever it is;
- the hot table holds the live jobs (waiting, ready, reserved), the buried
  ones (they can still be kicked) and the last seconds of done ones: it
  stays small however long the retention;
- retention of done jobs drops a whole day's table (a catalog change that
  holds its locks for milliseconds) instead of deleting its rows one by one.

A move is one statement (DELETE ... RETURNING into INSERT): a worker that
dies between a job's outcome and its move leaves the job done in the hot
table, where the next move finds it. Day tables are made ahead of need by
the pruner; a move that finds its day missing (made too late, or dropped by
hand) makes it and logs it. SQLite keeps every job in its one table.
"""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, time, timedelta

from django.db import DatabaseError, connections, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from ..models import Batch, Dependency, Job
from ..states import State
from .guard import get_db

logger = logging.getLogger("django_jobs.queue")

#: The span of one history table.
PARTITION = timedelta(days=1)
#: Day tables made ahead of today by the pruner.
AHEAD = 2
#: Rows one move takes: a few tens of milliseconds of the leader's loop.
BATCH = 1000
PREFIX = f"{Job._meta.db_table}_d"

#: The indexes of a day table: those of the job table that its readers
#: (the console, get_result, batches, workflows) use on done jobs, and the
#: one by which dropping an older day finds the jobs that name it as their
#: blocker (``unlink``), lest that look read every day of the history.
INDEXES = (
    "PRIMARY KEY (id)",
    "(queue, id DESC)",
    "(task_path, id DESC)",
    "(enqueued_at)",
    "(finished_at)",
    "(id DESC) WHERE errors <> '[]'::jsonb",
    "(parent_id) WHERE parent_id IS NOT NULL",
    "(batch_id) WHERE batch_id IS NOT NULL",
    "(workflow_id, state) WHERE workflow_id IS NOT NULL",
    "(blocked_by_id) WHERE blocked_by_id IS NOT NULL",
)


def available(using: str | None = None) -> bool:
    """Whether done jobs move to history on this database (PostgreSQL)."""
    return connections[get_db(using)].vendor == "postgresql"


def table_name(day: date) -> str:
    return f"{PREFIX}{day:%Y%m%d}"


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def tables(using: str | None = None) -> dict[date, str]:
    """The history's day tables, by day (read from the catalog each time, so
    that a table dropped by hand is seen as missing)."""
    return {day: name for day, name, child in _day_tables(using) if child}


def detached(using: str | None = None) -> dict[date, str]:
    """Day tables that are no longer children of the job table: ``drop``
    detaches a day before it drops it, and a process that died in between
    leaves it so."""
    return {day: name for day, name, child in _day_tables(using) if not child}


def _day_tables(using: str | None) -> list[tuple[date, str, bool]]:
    with connections[get_db(using)].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, EXISTS (SELECT 1 FROM pg_inherits i"
            " WHERE i.inhrelid = c.oid AND i.inhparent = %s::regclass)"
            " FROM pg_class c WHERE c.relkind = 'r' AND c.relname LIKE %s"
            " AND pg_table_is_visible(c.oid)",
            [Job._meta.db_table, PREFIX.replace("_", r"\_") + "%"],
        )
        rows = cursor.fetchall()
    found = []
    for name, child in rows:
        try:
            day = datetime.strptime(name[len(PREFIX) :], "%Y%m%d").date()
        except ValueError:
            continue  # somebody's own table: not ours
        if table_name(day) == name:
            found.append((day, name, child))
    return found


def create(day: date, using: str | None = None) -> str:
    """Make ``day``'s table (and its indexes) if it does not exist; its name."""
    db = get_db(using)
    name = table_name(day)
    start = datetime.combine(day, time(), tzinfo=UTC)
    end = start + PARTITION
    parent = Job._meta.db_table
    with transaction.atomic(using=db), connections[db].cursor() as cursor:
        # Two makers at once (two movers, two backends' pruners): the second
        # waits here, then finds the table (IF NOT EXISTS alone would fail).
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [name])
        cursor.execute(
            f'CREATE TABLE IF NOT EXISTS "{name}" ('
            f"CONSTRAINT \"{name}_day\" CHECK (state = '{State.DONE.value}'"
            " AND finished_at >= %s AND finished_at < %s)"
            f') INHERITS ("{parent}")',
            [start, end],
        )
        if day in detached(db):  # detached by hand, or by a drop that died
            cursor.execute(f'ALTER TABLE "{name}" INHERIT "{parent}"')
            logger.warning("history: %s was detached; attached again", name)
        for number, index in enumerate(INDEXES):
            if index.startswith("PRIMARY KEY"):
                cursor.execute(
                    "SELECT 1 FROM pg_constraint WHERE conname = %s", [f"{name}_pkey"]
                )
                if not cursor.fetchone():
                    cursor.execute(
                        f'ALTER TABLE "{name}" ADD CONSTRAINT "{name}_pkey" {index}'
                    )
                continue
            columns, _, where = index.partition(" WHERE ")
            cursor.execute(
                f'CREATE INDEX IF NOT EXISTS "{name}_{number}" ON "{name}" {columns}'
                + (f" WHERE {where}" if where else "")
            )
    return name


def prepare(now: datetime, using: str | None = None) -> list[str]:
    """Make the tables of today and the next ``AHEAD`` days that are missing
    (the pruner's upkeep: a move never has to make one in the normal run)."""
    existing = tables(using)
    today = day_of(now)
    days = [today + timedelta(days=n) for n in range(AHEAD + 1)]
    return [create(day, using) for day in days if day not in existing]


def move(*, before: datetime, limit: int = BATCH, using: str | None = None) -> int:
    """Move up to ``limit`` done jobs that finished before ``before`` from the
    hot table into their day's table; how many moved.

    One statement per day met: the rows are locked (SKIP LOCKED: two movers
    never wait on each other), deleted from the hot table and inserted into
    the day's table together, so a job is always in exactly one of them.
    """
    db = get_db(using)
    connection = connections[db]
    hot = Job._meta.db_table
    moved = 0
    existing = tables(db)
    while moved < limit:
        with connection.cursor() as cursor:
            cursor.execute(
                f'SELECT finished_at FROM ONLY "{hot}"'
                f" WHERE state = '{State.DONE.value}' AND finished_at < %s"
                " AND finished_at > '1970-01-01' ORDER BY finished_at LIMIT 1",
                [before],
            )
            row = cursor.fetchone()
        if row is None:
            break
        day = day_of(row[0])
        name = existing.get(day)
        if name is None:
            name = existing[day] = create(day, db)
            logger.warning(
                "history: made the missing table %s for jobs done on %s"
                " (the pruner makes them ahead; was one dropped by hand?)",
                name,
                day,
            )
        start = datetime.combine(day, time(), tzinfo=UTC)
        with connection.cursor() as cursor:
            cursor.execute(
                f'WITH gone AS (DELETE FROM ONLY "{hot}" WHERE id IN ('
                f'SELECT id FROM ONLY "{hot}"'
                f" WHERE state = '{State.DONE.value}'"
                " AND finished_at >= %s AND finished_at < %s AND finished_at < %s"
                " ORDER BY finished_at LIMIT %s FOR UPDATE SKIP LOCKED)"
                f' RETURNING *) INSERT INTO "{name}" SELECT * FROM gone',
                [start, start + PARTITION, before, limit - moved],
            )
            count = cursor.rowcount
        if count <= 0:
            break  # what is left is locked by another mover
        moved += count
    return moved


def drop(
    before: date, using: str | None = None, lock_timeout: float = 1.0
) -> list[str]:
    """Drop the day tables of days before ``before``: retention by the day.

    ``detach``, then ``drop_detached``: see them. The worker's pruner runs
    the second in a thread of its own, since a big day's files take the
    server seconds to delete.
    """
    gone = detach(before, using, lock_timeout)
    return gone + [name for name in drop_detached(before, using) if name not in gone]


def detach(
    before: date, using: str | None = None, lock_timeout: float = 1.0
) -> list[str]:
    """Detach the day tables of days before ``before`` from the job table.

    Each day in a short transaction of its own: its jobs' links from other
    jobs go (``unlink``), then ``NO INHERIT``, after which no reader of the
    job table reaches the day (and the claims and completions never did).
    Dropping a table of millions of rows holds its lock until the server
    has deleted its files, seconds for a big day: detached first, the table
    has no readers left to hold up. The detach waits at most
    ``lock_timeout`` seconds for the day's readers to finish; a day that
    could not be detached is left for the next run. A day table found
    detached within the retention (by hand) is attached again, and logged:
    its jobs were hidden from every reader, not past their time. Returns
    the tables detached.
    """
    db = get_db(using)
    parent = Job._meta.db_table
    gone = []
    for day, name in sorted(tables(db).items()):
        if day >= before:
            break
        try:
            with transaction.atomic(using=db), connections[db].cursor() as cursor:
                wait = int(lock_timeout * 1000)
                cursor.execute(f"SET LOCAL lock_timeout = '{wait}ms'")
                unlink(cursor, name)
                cursor.execute(f'ALTER TABLE "{name}" NO INHERIT "{parent}"')
        except DatabaseError as exc:  # busy (lock_timeout): the next run drops it
            logger.info("history: %s not dropped yet (%s)", name, exc)
            continue
        gone.append(name)
    for day, name in sorted(detached(db).items()):
        if day >= before:  # detached by hand: its jobs are hidden, not expired
            with connections[db].cursor() as cursor:
                cursor.execute(f'ALTER TABLE "{name}" INHERIT "{parent}"')
            logger.warning("history: %s was detached; attached again", name)
    return gone


def drop_detached(before: date, using: str | None = None) -> list[str]:
    """Drop the detached day tables of days before ``before`` (``detach``
    made them, or a process that died before it dropped them)."""
    db = get_db(using)
    dropped = []
    for day, name in sorted(detached(db).items()):
        if day < before:
            with connections[db].cursor() as cursor:
                cursor.execute(f'DROP TABLE IF EXISTS "{name}"')
            dropped.append(name)
    return dropped


def unlink(cursor, name: str) -> None:
    """Do for the jobs of day table ``name`` what deleting them through the
    ORM would: their workflow edges go, and the jobs and batches that name
    them as parent, blocker or callback forget them. Each statement looks
    only at the rows that name an id within the table's range of ids, and
    checks each against the table's primary key."""
    cursor.execute(f'SELECT min(id), max(id) FROM "{name}"')
    low, high = cursor.fetchone()
    if low is None:
        return
    within = f'BETWEEN {int(low)} AND {int(high)} AND EXISTS (SELECT 1 FROM "{name}" g'
    edges = Dependency._meta.db_table
    cursor.execute(
        f'DELETE FROM "{edges}" d WHERE (d.upstream_id {within}'
        f" WHERE g.id = d.upstream_id)) OR (d.downstream_id {within}"
        " WHERE g.id = d.downstream_id))"
    )
    for column in ("parent_id", "blocked_by_id"):
        cursor.execute(
            f'UPDATE "{Job._meta.db_table}" j SET {column} = NULL'
            f" WHERE j.{column} {within} WHERE g.id = j.{column})"
        )
    cursor.execute(
        f'UPDATE "{Batch._meta.db_table}" b SET callback_job_id = NULL'
        f" WHERE b.callback_job_id {within} WHERE g.id = b.callback_job_id)"
    )


def in_hot_table(rows: QuerySet) -> RawSQL:
    """The ids of ``rows`` that are in the hot table itself (``ONLY``: the
    ORM cannot say it), as a subquery for ``pk__in``."""
    sql, params = rows.values("pk").query.sql_with_params()
    hot = connections[rows.db].ops.quote_name(Job._meta.db_table)
    return RawSQL(sql.replace(f"FROM {hot}", f"FROM ONLY {hot}", 1), params)
