"""bench/capacity.py --explain ROWS,...: the hot statements' plans, and the
one-at-a-time operations' cost, in a job table of ROWS rows.

For each size, a database of its own (DATABASE_URL's name + "_big" for a
million rows or more, "_small" below; created and migrated if missing) gets
ROWS jobs from one INSERT ... SELECT FROM generate_series (its other
indexes dropped meanwhile and rebuilt after, its triggers disabled): a week
of history, mostly done, 2% buried, then 50 reserved and 1,000 ready; then
VACUUM ANALYZE. The table is kept for the next run unless it holds another
number of rows (or --refill).

Printed: EXPLAIN (ANALYZE, BUFFERS) of the worker's claim (one job, writing
its room) and of its completion of one reserved job, both prepared as the
worker prepares them and explained at their sixth execution (the first five
run before, so that PostgreSQL has chosen between a custom and the generic
plan as it does for the worker), and of the INSERT an enqueue sends (not
prepared), each in a transaction rolled back; then the server CPU,
statements, WAL and updates per job of --jobs enqueues, claims and
completions one at a time (as bench/capacity.py's first table; the jobs
enqueued with priority 100, so that the claims take them, then deleted and
vacuumed away, index entries included), their WAL by relation, and how
PostgreSQL planned the prepared claims and completions.
"""

from __future__ import annotations

import re
import threading
import time

import capacity_measure as m
import capacity_report as r
from common import create_database

READY = 1_000
RESERVED = 50
BIG = 1_000_000

FILL = """
INSERT INTO django_jobs_job (
    backend, queue, task_path, args, kwargs, state, priority, run_at, ttr,
    attempts, max_attempts, on_failure, enqueued_at, started_at,
    last_attempted_at, finished_at, reserved_until, reserved_by, claim_token,
    worker_ids, errors, return_value, unique_key, limit_key, logs, usage,
    waiting_for, downstream_count, runs_anyway
)
SELECT
    'default', 'default', 'bench.tasks.noop', jsonb_build_array(i), '{}', kind,
    0, t, 300, CASE kind WHEN 'ready' THEN 0 WHEN 'buried' THEN 3 ELSE 1 END,
    3, 'bury', t,
    CASE WHEN kind <> 'ready' THEN t + interval '1 second' END,
    CASE WHEN kind <> 'ready' THEN t + interval '1 second' END,
    CASE WHEN kind IN ('done', 'buried') THEN t + interval '2 seconds' END,
    CASE WHEN kind = 'reserved' THEN now() + interval '1 hour' END,
    CASE WHEN kind = 'reserved' THEN 'bench-worker' ELSE '' END,
    CASE WHEN kind = 'reserved' THEN md5(i::text) ELSE '' END,
    CASE WHEN kind = 'ready' THEN '[]' ELSE '["bench-worker"]' END::jsonb,
    CASE WHEN kind = 'buried' THEN '[{"exception_class_path":
        "builtins.ValueError", "traceback": "ValueError: bench", "attempt": 3,
        "worker_id": "bench-worker"}]' ELSE '[]' END::jsonb,
    CASE WHEN kind = 'done' THEN 'null'::jsonb END,
    '', '', '[]', '[]', 0, 0, false
FROM (
    SELECT i, now() - make_interval(secs => (%(n)s - i) * 604800.0 / %(n)s) AS t,
           CASE WHEN i > %(n)s - %(ready)s THEN 'ready'
                WHEN i > %(n)s - %(ready)s - %(reserved)s THEN 'reserved'
                WHEN random() < 0.02 THEN 'buried'
                ELSE 'done' END AS kind
    FROM generate_series(1, %(n)s) AS i
) AS s
"""


def use_database(name: str) -> None:
    """Point every connection at database ``name``: created, migrated."""
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    for alias in connections:
        connections[alias].settings_dict["NAME"] = name
    create_database()
    call_command("migrate", verbosity=0)
    m.prepare()


def execute(*statements: str, params=None) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for sql in statements:
            cursor.execute(sql, params)


def watch(done: threading.Event, start: float, params: dict) -> None:
    """Print the job table's size every 15 s while it fills."""
    import psycopg

    with psycopg.connect(**params) as watcher:
        while not done.wait(15):
            (size,) = watcher.execute(
                f"SELECT pg_relation_size('{m.TABLE}')"
            ).fetchone()
            print(
                f"  {time.perf_counter() - start:4.0f} s: heap {size / 2**20:,.0f} MB",
                flush=True,
            )
            watcher.commit()


def fill(rows: int, refill: bool) -> None:
    """Fill the job table with ``rows`` jobs, unless it holds that many."""
    from capacity_anatomy import secondary_indexes
    from django.db import connection

    (have,) = m.one(f"SELECT count(*) FROM {m.TABLE}")
    if have == rows and not refill:
        print(f"Reusing the {rows:,} jobs in the table (--refill to rebuild them).")
        return
    print(f"Filling the job table with {rows:,} jobs...", flush=True)
    start = time.perf_counter()
    indexes = secondary_indexes()
    m.unseat_workers()
    execute(
        f"TRUNCATE {m.TABLE}, django_jobs_dependency, django_jobs_workflow"
        " RESTART IDENTITY",
        *(f'DROP INDEX "{name}"' for name in indexes),
        f"ALTER TABLE {m.TABLE} DISABLE TRIGGER USER",
        "SET maintenance_work_mem = '1GB'",
    )
    done = threading.Event()
    watched = connection.get_connection_params()
    watcher = threading.Thread(target=watch, args=(done, start, watched), daemon=True)
    watcher.start()
    try:
        execute("SELECT setseed(0.24)")
        params = {"n": rows, "ready": min(READY, rows), "reserved": RESERVED}
        execute(FILL, params=params)
        print(f"  {time.perf_counter() - start:4.0f} s: rows written", flush=True)
    finally:
        done.set()
        execute(f"ALTER TABLE {m.TABLE} ENABLE TRIGGER USER")
        for name, definition in indexes.items():
            execute(definition)
            print(f"  {time.perf_counter() - start:4.0f} s: {name}", flush=True)
    execute(f"VACUUM ANALYZE {m.TABLE}", "RESET maintenance_work_mem")
    print(f"  {time.perf_counter() - start:4.0f} s: vacuumed and analyzed")


def positional(sql: str) -> str:
    """``sql`` with $1, $2... for its %s: as psycopg sends it (and as
    pg_prepared_statements shows it)."""
    counter = iter(range(1, sql.count("%s") + 1))
    return re.sub(r"%%|%s", lambda p: "%" if p[0] == "%%" else f"${next(counter)}", sql)


def explain_prepared(title: str, sql: str, runs: list[list], before: str = "") -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the last of ``runs`` (parameters) of
    ``sql``, which the others run first as the worker does (prepared by
    psycopg); ``before``: SQL run before each. In a transaction rolled back."""
    from django.db import connection, transaction

    from django_jobs.queue.sql import fetch_all

    with transaction.atomic(), connection.cursor() as cursor:
        for params in runs[:-1]:
            if before:
                cursor.execute(before)
            fetch_all(connection, sql, params, prepare=True)
        if before:
            cursor.execute(before)
        cursor.execute(
            "SELECT name FROM pg_prepared_statements WHERE statement = %s"
            " ORDER BY generic_plans + custom_plans DESC LIMIT 1",
            [positional(sql)],
        )
        (name,) = cursor.fetchone()
        placeholders = ", ".join(["%s"] * len(runs[-1]))
        cursor.execute(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE {name} ({placeholders})", runs[-1]
        )
        plan = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    kind = "generic" if any(re.search(r"\$\d", line) for line in plan) else "custom"
    print(f"\n-- {title}: a {kind} plan\n{sql}\n" + "\n".join(plan))


def explain_statements(tasks) -> None:
    from django.db import connection, transaction
    from django.utils import timezone

    from django_jobs import queue
    from django_jobs.models import Job
    from django_jobs.queue import sql as statements
    from django_jobs.queue.guard import unreserved

    m.unseat_workers()
    m.seat_workers("bench", 1, 1)
    try:
        sql, params = queue.claim_statement(
            connection,
            worker_id="bench-0",
            queues=None,
            limit=1,
            backend="default",
            room=True,
        )
        explain_prepared(
            "the claim of one job, prepared, its 6th execution (its worker's"
            " room written each time)",
            sql,
            [params] * 6,
            before="UPDATE django_jobs_worker SET room = 1 WHERE id = 'bench-0'",
        )
    finally:
        m.unseat_workers()
    held = Job.objects.filter(state="reserved").order_by("pk")[:6]
    runs = []
    for job in held:
        sql, params = statements.completion(
            connection,
            outcomes=[(job.pk, job.claim_token, None, None)],
            now=timezone.now(),
            cleared=unreserved(),
        )
        runs.append(params)
    explain_prepared(
        "the completion of one job, prepared, its 6th execution", sql, runs
    )

    sent = []

    def capture(run, sql, params, many, context):
        sent.append((sql, params))
        return run(sql, params, many, context)

    with transaction.atomic():
        with connection.execute_wrapper(capture):
            tasks.noop.enqueue(0)
        transaction.set_rollback(True)
    ((sql, params),) = sent
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        plan = [row[0] for row in cursor.fetchall()]
        transaction.set_rollback(True)
    print("\n-- the enqueue of one job (not prepared)\n" + sql + "\n" + "\n".join(plan))


def sizes_line() -> str:
    heap, indexes, claim, toast = m.one(
        f"SELECT pg_relation_size('{m.TABLE}'), pg_indexes_size('{m.TABLE}'),"
        " pg_relation_size('django_jobs_job_claim'),"
        " pg_total_relation_size(reltoastrelid) FROM pg_class"
        f" WHERE oid = '{m.TABLE}'::regclass"
    )
    mb = 2**20
    return (
        f"heap {heap / mb:,.1f} MB, indexes {indexes / mb:,.1f} MB "
        f"(the claim's {claim / mb:,.2f} MB), TOAST {toast / mb:,.2f} MB"
    )


def run(tasks, sizes: list[int], options) -> None:
    from django.db import connection

    base = connection.settings_dict["NAME"]
    jobs = options.jobs or 2000
    enqueue = tasks.noop.using(priority=100).enqueue
    for rows in sizes:
        use_database(f"{base}_big" if rows >= BIG else f"{base}_small")
        print(f"\n=== {rows:,} rows, database {connection.settings_dict['NAME']}")
        fill(rows, options.refill)
        print(sizes_line())
        explain_statements(tasks)
        m.warm_up(enqueue)
        first = m.last_id()
        runs = []
        try:
            for _ in range(options.runs):
                runs.append(m.one_at_a_time(enqueue, jobs))
        finally:
            # Their index entries too (VACUUM would skip the indexes for so
            # few dead rows), or the next run's claims walk over them.
            execute(f"DELETE FROM {m.TABLE} WHERE id > %s", params=[first])
            execute(f"VACUUM (INDEX_CLEANUP ON) {m.TABLE}")
        costs = {
            f"{op}, one at a time": m.median([run[op] for run in runs])
            for op in runs[0]
        }
        r.print_costs(
            f"Per job at {rows:,} rows, {jobs:,} jobs (median of {options.runs} runs)",
            costs,
            {
                "per job: enqueue + claim + complete": tuple(costs),
            },
        )
        if m.walinspect:
            r.print_wal(costs, {op: f"{op}, one at a time" for op in runs[0]})
        r.print_plans()
