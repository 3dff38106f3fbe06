"""Enqueue throughput on PostgreSQL: one job per transaction, bulk, and the floors.

    python bench/enqueue.py [--jobs 3000] [--bulk 50000] [--runs 5]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/django_jobs_bench
(created and migrated if missing). Every figure is jobs per second, the median
of --runs runs, each run on an emptied table; the runs of the cases are
interleaved (one of each, --runs times), so that a machine whose load drifts
skews them alike. "client CPU" is this process's CPU per job: the rest of
the time is the server's and the commit's.

One enqueue per transaction is measured in layers, to say where its time
goes: ``Task.enqueue`` as an application calls it; the same with the
connection preparing its statements (``"prepare_threshold"`` in the
database's ``OPTIONS``, which psycopg honours and a pooler in transaction
mode may not); the bare INSERT of the same row with psycopg, unprepared and
prepared; and the commit floor, an INSERT into a table of one column and its
primary key.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

from common import print_table, setup_django, summary, truncate_jobs


def single(tasks, n: int) -> float:
    truncate_jobs()
    start = time.perf_counter()
    for i in range(n):
        tasks.noop.enqueue(i)
    return n / (time.perf_counter() - start)


def prepared(tasks, n: int) -> float:
    """``single`` on a connection that prepares every statement it runs."""
    from django.db import connection

    connection.ensure_connection()
    connection.connection.prepare_threshold = 0
    try:
        return single(tasks, n)
    finally:
        connection.connection.prepare_threshold = None


def bulk(tasks, n: int) -> float:
    truncate_jobs()
    calls = [((i,), {}) for i in range(n)]
    start = time.perf_counter()
    tasks.noop.enqueue_many(calls)
    return n / (time.perf_counter() - start)


def bare_insert(n: int, prepare: bool = False) -> float:
    """A psycopg INSERT + commit per row into the same table."""
    import psycopg
    from django.db import connection

    truncate_jobs()
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as conn:
        conn.prepare_threshold = 0 if prepare else None
        sql = (
            "INSERT INTO django_jobs_job (backend, queue, task_path, args, kwargs,"
            " state, priority, run_at, ttr, attempts, max_attempts, on_failure,"
            " enqueued_at, reserved_by, claim_token, worker_ids, errors)"
            " VALUES ('default', 'default', 'bench.tasks.noop', %s, '{}', 'ready',"
            " 0, now(), 300, 0, 3, 'bury', now(), '', '', '[]', '[]') RETURNING id"
        )
        start = time.perf_counter()
        for i in range(n):
            conn.execute(sql, [json.dumps([i])]).fetchone()
        return n / (time.perf_counter() - start)


def thin_insert(n: int) -> float:
    """A psycopg INSERT + commit per row into a table of one JSON column and
    its primary key: what a commit costs on this machine, whatever the queue."""
    import psycopg
    from django.db import connection

    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS bench_thin")
        conn.execute("CREATE TABLE bench_thin (id bigserial PRIMARY KEY, args jsonb)")
        try:
            start = time.perf_counter()
            for i in range(n):
                conn.execute(
                    "INSERT INTO bench_thin (args) VALUES (%s) RETURNING id",
                    [json.dumps([i])],
                ).fetchone()
            return n / (time.perf_counter() - start)
        finally:
            conn.execute("DROP TABLE bench_thin")


def timed(n: int, run: Callable[[], float]) -> Callable[[], tuple[float, float]]:
    """``run``, returning its rate and this process's CPU per job (µs)."""

    def once() -> tuple[float, float]:
        cpu = time.process_time()
        rate = run()
        return rate, (time.process_time() - cpu) / n * 1e6

    return once


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--bulk", type=int, default=50000)
    parser.add_argument("--runs", type=int, default=5)
    options = parser.parse_args()
    setup_django()
    from bench import tasks

    cases = [
        (
            "Task.enqueue, 1 per transaction",
            options.jobs,
            lambda: single(tasks, options.jobs),
        ),
        (
            "Task.enqueue, prepared",
            options.jobs,
            lambda: prepared(tasks, options.jobs),
        ),
        (
            "Task.enqueue_many, 1 statement",
            options.bulk,
            lambda: bulk(tasks, options.bulk),
        ),
        (
            "bare psycopg INSERT + commit",
            options.jobs,
            lambda: bare_insert(options.jobs),
        ),
        (
            "bare psycopg INSERT + commit, prepared",
            options.jobs,
            lambda: bare_insert(options.jobs, prepare=True),
        ),
        (
            "INSERT + commit, one-column table",
            options.jobs,
            lambda: thin_insert(options.jobs),
        ),
    ]
    results: list[list[tuple[float, float]]] = [[] for _ in cases]
    for _ in range(options.runs):
        for i, (_name, n, run) in enumerate(cases):
            results[i].append(timed(n, run)())
    rows = [
        [
            name,
            n,
            *summary([rate for rate, _cpu in runs]),
            f"{statistics.median(cpu for _rate, cpu in runs):.0f}",
        ]
        for (name, n, _run), runs in zip(cases, results, strict=True)
    ]
    truncate_jobs()
    print_table(
        f"Enqueue throughput, jobs/s ({options.runs} interleaved runs)",
        ["method", "jobs", "median", "min", "max", "client CPU µs/job"],
        rows,
    )


if __name__ == "__main__":
    main()
