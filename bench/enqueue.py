"""Enqueue throughput on PostgreSQL: one job per transaction, bulk, and the floor.

    python bench/enqueue.py [--jobs 3000] [--bulk 50000] [--runs 5]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/django_jobs_bench
(created and migrated if missing). Every figure is jobs per second, the median
of --runs runs, each run on an emptied table.
"""

from __future__ import annotations

import argparse
import json
import time

from common import measure, print_table, setup_django, summary, truncate_jobs


def single(tasks, n: int) -> float:
    truncate_jobs()
    start = time.perf_counter()
    for i in range(n):
        tasks.noop.enqueue(i)
    return n / (time.perf_counter() - start)


def bulk(tasks, n: int) -> float:
    truncate_jobs()
    calls = [((i,), {}) for i in range(n)]
    start = time.perf_counter()
    tasks.noop.enqueue_many(calls)
    return n / (time.perf_counter() - start)


def bare_insert(n: int) -> float:
    """A psycopg INSERT + commit per row into the same table: the floor."""
    import psycopg
    from django.db import connection

    truncate_jobs()
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as conn:
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
            "Task.enqueue_many, 1 statement",
            options.bulk,
            lambda: bulk(tasks, options.bulk),
        ),
        (
            "bare psycopg INSERT + commit",
            options.jobs,
            lambda: bare_insert(options.jobs),
        ),
    ]
    rows = [[name, n, *summary(measure(options.runs, run))] for name, n, run in cases]
    truncate_jobs()
    print_table(
        f"Enqueue throughput, jobs/s ({options.runs} runs)",
        ["method", "jobs", "median", "min", "max"],
        rows,
    )


if __name__ == "__main__":
    main()
