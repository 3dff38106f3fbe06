"""What limits per key cost a claim: 10,000 keys against an unlimited queue.

    python bench/key_limits.py [--jobs 100000] [--keys 10000] [--hot 10000]
        [--claims 300] [--limit 8] [--runs 3]

Fills three queues with --jobs ready no-op jobs each: "plain" (no limits),
"limited" (max_concurrency, the per-queue limits' claim), and "keyed"
(key_concurrency 2, key_rate_limit 1000/hour) whose jobs spread over --keys
keys, one of them ("hot") holding --hot of them. Then, in each of --runs
rounds, --claims claims of --limit jobs from each queue in turn, as a
worker makes them (the limited queues known), with statements unprepared
(Django's default: psycopg's prepare_threshold is None, so nothing is
prepared although the claim asks for it), prepared (prepare_threshold 0
on the bench's connection) and as the worker runs them (its supervisor's
connection: the claim prepared, generic plans), and prints the median
time per claim and per claimed job, and each against the unlimited
queue's in the same mode.
Last, the SQL of one keyed claim, each statement with its EXPLAIN (ANALYZE,
BUFFERS), run in a transaction rolled back.
PostgreSQL; DATABASE_URL defaults to .../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import print_table, setup_django

QUEUES = ("plain", "limited", "keyed")
#: psycopg's prepare_threshold on the bench connection, and whether the
#: worker's planner settings apply: None is Django's default (nothing is
#: prepared, even when the claim asks for it), 0 prepares every statement
#: the claim runs; "as the worker" is the supervisor's connection (the
#: statements the claim asks to prepare, generic plans, no bitmap scans).
MODES = {
    "unprepared": (None, False),
    "prepared": (0, False),
    "as the worker": (2**31 - 1, True),  # supervisor_connection.ONLY_WHEN_ASKED
}
COLUMNS = """(backend, queue, task_path, args, kwargs, state, priority, run_at,
    ttr, attempts, max_attempts, on_failure, enqueued_at, reserved_by,
    claim_token, worker_ids, errors, limit_key)"""
ROWS = """SELECT 'default', %s, 'bench.tasks.noop', '[]', '{{}}', 'ready', 0,
    now() - interval '1 minute' + n * interval '1 microsecond', 300, 0, 3,
    'bury', now(), '', '', '[]', '[]', {key} FROM generate_series(1, %s) AS n"""


def fill(jobs: int, keys: int, hot: int) -> None:
    from django.db import connection

    from django_jobs import queue

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE django_jobs_job, django_jobs_queue, django_jobs_queuekey"
            " RESTART IDENTITY"
        )
        insert = f"INSERT INTO django_jobs_job {COLUMNS} {ROWS}"
        for name in ("plain", "limited"):
            cursor.execute(insert.format(key="''"), [name, jobs])
        cursor.execute(insert.format(key="'hot'"), ["keyed", hot])
        spread = f"'k' || (n %% {keys - 1})"
        cursor.execute(insert.format(key=spread), ["keyed", jobs - hot])
        cursor.execute("VACUUM ANALYZE django_jobs_job")
        cursor.execute("VACUUM ANALYZE django_jobs_queuekey")
    queue.configure("limited", max_concurrency=10**6)
    queue.configure("keyed", key_concurrency=2, key_rate_limit="1000/hour")


def claim_times(name: str, claims: int, limit: int) -> tuple[list[float], int]:
    """Seconds per claim, and the jobs claimed in all."""
    from django_jobs import queue

    limited = [name] if name != "plain" else []
    times, claimed = [], 0
    for n in range(claims):
        start = time.perf_counter()
        jobs = queue.claim(
            worker_id=f"bench-{n % 8}",
            queues=[name],
            limit=limit,
            limited=limited,
            prepare=True,
        )
        times.append(time.perf_counter() - start)
        claimed += len(jobs)
    return times, claimed


def explain_one_claim(limit: int) -> None:
    """Print each statement of one keyed claim with its EXPLAIN (ANALYZE,
    BUFFERS), run again in a transaction that is rolled back."""
    from django.db import connection, transaction

    from django_jobs import queue

    seen: list[tuple[str, list]] = []

    def record(execute, sql, params, many, context):
        seen.append((sql, list(params or ())))
        return execute(sql, params, many, context)

    with transaction.atomic(), connection.execute_wrapper(record):
        queue.claim(
            worker_id="explain", queues=["keyed"], limit=limit, limited=["keyed"]
        )
        transaction.set_rollback(True)
    print(f"\nOne keyed claim: {len(seen)} statements")
    for sql, params in seen:
        print(f"\n-- {sql}\n-- params: {params}")
        if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE")):
            continue
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
            print("\n".join(row[0] for row in cursor.fetchall()))
            transaction.set_rollback(True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--hot", type=int, default=10_000)
    parser.add_argument("--claims", type=int, default=300)
    parser.add_argument("--limit", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    setup_django()
    from django_jobs.worker.supervisor_connection import PLANNER_SETTINGS

    fill(args.jobs, args.keys, args.hot)
    from django.db import connection

    connection.ensure_connection()
    cases = [(mode, name) for mode in MODES for name in QUEUES]
    times: dict[tuple, list[float]] = {case: [] for case in cases}
    claimed = dict.fromkeys(cases, 0)
    for _ in range(args.runs):
        for mode, name in cases:
            threshold, planner = MODES[mode]
            connection.connection.prepare_threshold = threshold
            with connection.cursor() as cursor:
                for statement in PLANNER_SETTINGS if planner else ["RESET ALL"]:
                    cursor.execute(statement)
            taken, count = claim_times(name, args.claims, args.limit)
            times[mode, name] += taken
            claimed[mode, name] += count
    rows = []
    for mode, name in cases:
        spent = times[mode, name]
        median = statistics.median(spent)
        base = statistics.median(times[mode, "plain"])
        rows.append(
            [
                mode,
                name,
                f"{median * 1e6:,.0f}",
                f"{statistics.quantiles(spent, n=10)[-1] * 1e6:,.0f}",
                f"{sum(spent) / max(claimed[mode, name], 1) * 1e6:,.0f}",
                f"{claimed[mode, name] / len(spent):.1f}",
                f"{median / base:.2f}x",
            ]
        )
    print_table(
        f"Claims of {args.limit} jobs, {args.jobs:,} ready per queue, keyed over "
        f"{args.keys:,} keys ({args.hot:,} on one key); "
        f"{args.runs} x {args.claims} claims each",
        ["statements", "queue", "median us/claim", "p90 us", "us/job",
         "jobs/claim", "vs plain"],
        rows,
    )  # fmt: skip
    connection.connection.prepare_threshold = None
    with connection.cursor() as cursor:
        cursor.execute("RESET ALL")
    explain_one_claim(args.limit)


if __name__ == "__main__":
    main()
