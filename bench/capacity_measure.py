"""What bench/capacity.py measures of each operation, per job: the server's
CPU, the statements sent, the WAL written and the job rows' updates.

The CPU is the backend's own (user + system, /proc/<backend pid>/stat: the
server must run on this host). The statements are those the Django
connection executes (``connection.execute_wrapper``), not counting
transaction control (BEGIN, COMMIT, SAVEPOINT...: in autocommit Django
sends none for these operations). The WAL is read twice: the bytes the
operations' own transactions wrote, with pg_walinspect (the records whose
xid is the xmin of a row the operation wrote: its heap and index records,
the room write on the worker's row and the commit record, by relation and
record type), and the whole cluster's (pg_current_wal_insert_lsn() before
and after), which counts whatever else the server was doing. The updates
are pg_stat_user_tables' n_tup_upd and n_tup_hot_upd of django_jobs_job
(PostgreSQL 15: a backend sends its counters to the shared statistics at
most once a second, when it goes idle; ``pg_stat_force_next_flush()`` makes
the next time immediate, so each reading calls it first, then reads in the
next statement).
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

TICKS = os.sysconf("SC_CLK_TCK")
TABLE = "django_jobs_job"
NOTIFY_TRIGGERS = ("django_jobs_notify_insert", "django_jobs_notify_update")
CONTROL = ("BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START")

#: Whether pg_walinspect could be created in the database (see ``prepare``).
walinspect = False
#: psycopg's prepare_threshold for the bench's connection. Django's default,
#: None, prepares nothing, not even what asks to be (queue.sql.fetch_all's
#: ``prepare``); docs/pgbouncer.rst has the workers' direct connection set
#: it. This one prepares what asks to be (the worker's claim and completion)
#: and nothing else (an enqueue from a web process is not prepared).
PREPARE_THRESHOLD = 10**9


@dataclass
class Cost:
    """One operation's cost per job."""

    cpu: float  # µs of the server's CPU
    statements: float = 0.0
    wal: float | None = None  # bytes, the operation's own transactions
    wal_all: float = 0.0  # bytes, the whole cluster meanwhile
    updates: float = 0.0  # of job rows
    hot: float = 0.0  # of which HOT
    #: (relation, record) -> (records, bytes, of which full-page images)
    records: dict[tuple[str, str], tuple[float, float, float]] = field(
        default_factory=dict
    )

    def __add__(self, other: Cost) -> Cost:
        keys = self.records.keys() | other.records.keys()
        nothing = (0.0, 0.0, 0.0)
        return Cost(
            cpu=self.cpu + other.cpu,
            statements=self.statements + other.statements,
            wal=None if None in (self.wal, other.wal) else self.wal + other.wal,
            wal_all=self.wal_all + other.wal_all,
            updates=self.updates + other.updates,
            hot=self.hot + other.hot,
            records={
                key: tuple(
                    a + b
                    for a, b in zip(
                        self.records.get(key, nothing),
                        other.records.get(key, nothing),
                        strict=True,
                    )
                )
                for key in keys
            },
        )


def median(costs: list[Cost]) -> Cost:
    """Each figure's median over runs."""

    def mid(values: Iterable[float | None]) -> float | None:
        values = list(values)
        return None if None in values else statistics.median(values)

    keys = set().union(*(cost.records for cost in costs))
    return Cost(
        cpu=mid(c.cpu for c in costs),
        statements=mid(c.statements for c in costs),
        wal=mid(c.wal for c in costs),
        wal_all=mid(c.wal_all for c in costs),
        updates=mid(c.updates for c in costs),
        hot=mid(c.hot for c in costs),
        records={
            key: tuple(
                statistics.median(c.records.get(key, (0, 0, 0))[n] for c in costs)
                for n in range(3)
            )
            for key in keys
        },
    )


def prepare() -> None:
    """Have the connection prepare what asks to be (``PREPARE_THRESHOLD``);
    create pg_walinspect if it can be (PostgreSQL 15+, as a superuser); undo
    what a run stopped halfway may have left (see ``repair``)."""
    global walinspect
    from django.db import DatabaseError, connection, transaction

    from django_jobs.worker.supervisor_connection import (
        configure_supervisor_connection,
    )

    connection.close()
    connection.settings_dict.setdefault("OPTIONS", {})["prepare_threshold"] = (
        PREPARE_THRESHOLD
    )
    # The planner settings of a worker's supervisor (generic plans...).
    configure_supervisor_connection(connection.alias)

    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_walinspect")
        walinspect = True
    except DatabaseError as exc:
        print(f"(no pg_walinspect, so no WAL of the operations' own: {exc})")
    repair()


def repair() -> None:
    """Put back the job table's indexes and triggers, should a run killed
    while one was dropped or disabled have left it so."""
    from django.db import connection
    from django.db.models import UniqueConstraint

    from django_jobs.models import Job

    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", [TABLE])
        present = {name for (name,) in cursor.fetchall()}
    with connection.schema_editor() as editor:
        for index in Job._meta.indexes:
            if index.name not in present:
                editor.add_index(Job, index)
        for constraint in Job._meta.constraints:
            unique = isinstance(constraint, UniqueConstraint)
            if unique and constraint.name not in present:
                editor.add_constraint(Job, constraint)


def backend_cpu(pid: int) -> float:
    """Seconds of CPU the server process ``pid`` has used."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def backend_pid(alias: str = "default") -> int:
    from django.db import connections

    connection = connections[alias]
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def one(sql: str, params=None) -> tuple:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def lsn(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) + int(low, 16)


def job_updates() -> tuple[int, int]:
    """django_jobs_job's updates so far, and how many were HOT."""
    one("SELECT pg_stat_force_next_flush()")  # flushed as the backend idles
    return one(
        "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables"
        " WHERE relid = %s::regclass",
        [TABLE],
    )


OWN_WAL = """
WITH ours AS (
    SELECT DISTINCT xmin::text AS xid FROM django_jobs_job WHERE id = ANY(%s)
), records AS (
    SELECT resource_manager, record_type, record_length, fpi_length,
           substring(block_ref FROM 'rel \\d+/\\d+/(\\d+)')::oid AS node
    FROM pg_get_wal_records_info(%s::pg_lsn, %s::pg_lsn)
    WHERE xid::text IN (SELECT xid FROM ours)
)
SELECT coalesce(CASE WHEN c.relname LIKE 'pg_toast%%' THEN 'TOAST' END, c.relname,
                '-'),
       resource_manager || ' ' || split_part(record_type, '+', 1),
       count(*), sum(record_length), sum(fpi_length)
FROM records LEFT JOIN pg_class c ON c.relfilenode = records.node AND node <> 0
GROUP BY 1, 2
"""


def own_wal(start: str, end: str, ids: list[int]) -> dict:
    """The WAL records the transactions that last wrote the jobs ``ids``
    wrote between ``start`` and ``end``: (relation, record) -> (records,
    bytes, full-page image bytes)."""
    from django.db import connection

    if not ids or lsn(end) <= lsn(start):
        return {}
    with connection.cursor() as cursor:
        cursor.execute(OWN_WAL, [ids, start, end])
        return {
            (relation, kind): (count, int(size), int(images))
            for relation, kind, count, size, images in cursor.fetchall()
        }


def measure(
    operation: Callable[[int], object],
    calls: int,
    jobs: int,
    ids: Callable[[], list[int]] | None = None,
    wal: bool = True,
) -> Cost:
    """Call ``operation(i)`` for i in range(``calls``), which handle ``jobs``
    jobs in all; its cost per job. ``ids``: the jobs it wrote (called
    straight after, for the WAL of its transactions)."""
    from django.db import connection

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        if not sql.lstrip().upper().startswith(CONTROL):
            statements += 1
        return execute(sql, params, many, context)

    updated, hot = job_updates()
    (start,) = one("SELECT pg_current_wal_insert_lsn()::text")
    pid = backend_pid()
    cpu = backend_cpu(pid)
    with connection.execute_wrapper(count):
        for i in range(calls):
            operation(i)
    cpu = backend_cpu(pid) - cpu
    end, flushed = one(
        "SELECT pg_current_wal_insert_lsn()::text, pg_current_wal_flush_lsn()::text"
    )
    cost = Cost(
        cpu=cpu / jobs * 1e6,
        statements=statements / jobs,
        wal_all=(lsn(end) - lsn(start)) / jobs,
    )
    if wal and walinspect and ids is not None:
        records = own_wal(start, flushed, ids())
        cost.records = {
            key: tuple(value / jobs for value in values)
            for key, values in records.items()
        }
        cost.wal = sum(size for _, size, _ in cost.records.values())
    updated_after, hot_after = job_updates()
    cost.updates = (updated_after - updated) / jobs
    cost.hot = (hot_after - hot) / jobs
    return cost


def ids_after(last: int) -> Callable[[], list[int]]:
    """The ids of the jobs written after job ``last`` (the enqueued ones)."""
    from django_jobs.models import Job

    return lambda: list(Job.objects.filter(pk__gt=last).values_list("pk", flat=True))


def last_id() -> int:
    return one(f"SELECT coalesce(max(id), 0) FROM {TABLE}")[0]


def set_triggers(enabled: bool, names: Iterable[str] = NOTIFY_TRIGGERS) -> None:
    """Enable or disable the job table's triggers ``names`` (or ``USER``: all)."""
    from django.db import connection

    verb = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cursor:
        for name in [names] if isinstance(names, str) else names:
            cursor.execute(f"ALTER TABLE {TABLE} {verb} TRIGGER {name}")


def seat_workers(prefix: str, count: int, room: int) -> None:
    """Worker rows ``prefix-0``, ``prefix-1``... with ``room``."""
    from django_jobs.models import Worker

    Worker.objects.bulk_create(
        Worker(id=f"{prefix}-{n}", hostname="bench", pid=n, concurrency=room, room=room)
        for n in range(count)
    )


def unseat_workers() -> None:
    """No worker rows, and no dead ones: an enqueue's trigger reads them all."""
    with_cursor("TRUNCATE django_jobs_worker")


def claimer(claimed: list, limit: int, worker: str, **options) -> Callable:
    """The worker's claim of up to ``limit`` jobs, by ``worker``. With
    ``room`` (the default), the worker's row says it has room for ``limit``
    before each claim (written on the "supervisor" connection, as its
    heartbeat would: not counted), so that every claim writes the room."""
    from django.db import connections

    from django_jobs import queue

    options = {"prepare": True, "room": True, **options}
    heartbeat = connections["supervisor"]

    def claim(i: int) -> None:
        if options["room"]:
            with heartbeat.cursor() as cursor:
                cursor.execute(
                    "UPDATE django_jobs_worker SET room = %s WHERE id = %s",
                    [limit, worker],
                )
        jobs = queue.claim(worker_id=worker, limit=limit, limited=(), **options)
        assert len(jobs) == limit, (len(jobs), limit)
        claimed.extend(jobs)

    return claim


def completer(jobs: list, per: int, prepare: bool = True) -> Callable:
    """The worker's completion of ``per`` jobs in one statement."""
    from django_jobs import queue

    def complete(i: int) -> None:
        batch = jobs[i * per : (i + 1) * per]
        written = queue.complete_returning(
            [(job.pk, job.claim_token, None) for job in batch], prepare=prepare
        )
        assert len(written) == len(batch)

    return complete


def one_at_a_time(
    enqueue: Callable[[int], object],
    jobs: int,
    *,
    prepare: bool = True,
    room: bool = True,
    wal: bool = True,
) -> dict[str, Cost]:
    """Enqueue ``jobs`` jobs one at a time, claim them one at a time (by a
    worker whose row says it has room), complete them one at a time."""
    costs = {}
    first = last_id()
    costs["enqueue"] = measure(enqueue, jobs, jobs, ids_after(first), wal)
    claimed: list = []
    seat_workers("bench", 1, 1)
    try:
        costs["claim"] = measure(
            claimer(claimed, 1, "bench-0", prepare=prepare, room=room),
            jobs,
            jobs,
            lambda: [job.pk for job in claimed],
            wal,
        )
    finally:
        unseat_workers()
    costs["complete"] = measure(
        completer(claimed, 1, prepare), jobs, jobs, lambda: [j.pk for j in claimed], wal
    )
    return costs


def warm_up(enqueue: Callable[[int], object], jobs: int = 200) -> None:
    """A few jobs through ``one_at_a_time``, not measured (the connection's
    first statements, caches), then deleted."""
    first = last_id()
    one_at_a_time(enqueue, jobs, wal=False)
    with_cursor(f"DELETE FROM {TABLE} WHERE id > %s", [first])


def with_cursor(sql: str, params=None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(sql, params)
