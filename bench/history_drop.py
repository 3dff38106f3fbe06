"""Retention by the day: the locks of dropping a day of the history, under load.

    python bench/history_drop.py [--rows 17000000] [--seconds 5]

PostgreSQL only. DATABASE_URL defaults to
postgres://postgres@127.0.0.1:5432/django_jobs_drop (created and migrated if
missing; a scratch database: its jobs are deleted). A day table is made as
the pruner makes one (``history.create``, with its indexes) for a day 40
days ago, and filled in SQL with --rows done jobs (17 million: a day at 200
jobs a second), a million rows a statement. Then:

1. **What the drop locks.** Each of ``history.drop``'s two transactions
   (the detach of the day from the job table, then the drop of the detached
   table) runs left open before its commit; another session reads which
   locks it holds, and whether a claim (``ONLY`` the hot table), an
   enqueue, and a console read of the whole job table (which reads every
   attached day table) get through within 200 ms or wait.
2. **How long it holds them.** ``history.drop`` itself, timed statement by
   statement, while a second process enqueues, claims and completes jobs
   through the queue one at a time, and reads the newest done job as the
   console does, and reports the slowest of each during the drop beside
   its median before it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/django_jobs_drop"
)

from common import print_table, setup_django

CHUNK = 1_000_000
FIRST_ID = 10**12  # far above the hot table's ids
FILL = """
INSERT INTO "{table}" (id, backend, queue, task_path, args, kwargs, state,
    priority, run_at, ttr, attempts, max_attempts, on_failure, enqueued_at,
    started_at, finished_at, reserved_by, claim_token, worker_ids, errors,
    return_value)
SELECT %(base)s + g, 'default', 'default', 'myapp.emails.send_welcome',
    jsonb_build_array(g), '{{}}', 'done', 0, t, 300, 1, 3, 'bury', t, t, t,
    '', '', '["bench-worker"]', '[]', 'null'
FROM generate_series(%(first)s, %(last)s) AS g,
    LATERAL (SELECT %(day)s::timestamptz + (g * %(step)s) * interval '1 second') AS s(t)
"""


def fill(day, rows: int) -> str:
    from django.db import connection

    from django_jobs.queue import history

    for name in history.tables().values():
        with connection.cursor() as cursor:
            cursor.execute(f'DROP TABLE "{name}"')
    name = history.create(day)
    start = time.perf_counter()
    step = 86_000 / max(rows, 1)
    with connection.cursor() as cursor:
        for first in range(1, rows + 1, CHUNK):
            last = min(first + CHUNK - 1, rows)
            cursor.execute(
                FILL.format(table=name),
                {"base": FIRST_ID, "first": first, "last": last, "day": day,
                 "step": step},
            )  # fmt: skip
            print(f"  {last:,} rows, {time.perf_counter() - start:.0f} s", flush=True)
        cursor.execute(f'VACUUM ANALYZE "{name}"')
        cursor.execute(
            "SELECT pg_total_relation_size(%s), pg_relation_size(%s)", [name, name]
        )
        total, heap = cursor.fetchone()
    print(
        f"{name}: {rows:,} rows, {heap / 2**20:,.0f} MB of heap,"
        f" {total / 2**20:,.0f} MB with its indexes,"
        f" filled in {time.perf_counter() - start:.0f} s"
    )
    return name


def locks_held(name: str) -> list[list[str]]:
    """Run each of ``history.drop``'s two transactions without committing
    it; from a second session, list the locks it holds and try the hot
    statements and a console read."""
    import psycopg
    from django.db import connection

    from django_jobs.queue import history

    params = connection.get_connection_params()
    parent = "django_jobs_job"
    detach = f'ALTER TABLE "{name}" NO INHERIT "{parent}"'
    steps = {
        "detach (unlink, NO INHERIT)": lambda cursor: (
            history.unlink(cursor, name),
            cursor.execute(detach),
        ),
        "drop (of the detached table)": lambda cursor: (
            cursor.execute(f'DROP TABLE "{name}"'),
        ),
    }
    rows = []
    for step, run in steps.items():
        with (
            psycopg.connect(**params) as dropper,
            psycopg.connect(**params, autocommit=True) as other,
        ):
            if step.startswith("drop"):  # the detach committed, as drop does
                other.execute(detach)
            with dropper.cursor() as cursor:
                run(cursor)
            held = other.execute(
                "SELECT c.relname, l.mode FROM pg_locks l"
                " JOIN pg_class c ON c.oid = l.relation"
                " WHERE l.pid = %s AND l.granted AND c.relkind = 'r'"
                " AND c.relname LIKE 'django_jobs_job%%' ORDER BY 1, 2",
                [dropper.info.backend_pid],
            ).fetchall()
            modes: dict[str, list[str]] = {}
            for relation, mode in held:
                modes.setdefault(relation, []).append(mode)
            for relation, mode in modes.items():
                rows.append([step, f"holds {relation}: {', '.join(mode)}"])
            other.execute("SET lock_timeout = '200ms'")
            for label, sql in TRIES.items():
                try:
                    with other.transaction():
                        other.execute(sql)
                        raise _RolledBack
                except _RolledBack:
                    rows.append([step, f"{label}: goes through"])
                except psycopg.errors.LockNotAvailable:
                    rows.append([step, f"{label}: waits for its commit"])
            dropper.rollback()
            if step.startswith("drop"):
                other.execute(f'ALTER TABLE "{name}" INHERIT "{parent}"')
    return rows


#: What a drop must not hold up, tried while it holds its locks.
TRIES = {
    "a claim (ONLY the hot table)": (
        "SELECT id FROM ONLY django_jobs_job WHERE state = 'ready'"
        " ORDER BY priority DESC, run_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
    ),
    "an enqueue": (
        "INSERT INTO django_jobs_job (backend, queue, task_path, args, kwargs,"
        " state, priority, run_at, ttr, attempts, max_attempts, on_failure,"
        " enqueued_at, reserved_by, claim_token, worker_ids, errors)"
        " VALUES ('default', 'default', 'bench.tasks.noop', '[]', '{}',"
        " 'ready', 0, now(), 300, 0, 3, 'bury', now(), '', '', '[]', '[]')"
    ),
    "a console read (the job table and its days)": (
        "SELECT id FROM django_jobs_job WHERE state = 'done'"
        " ORDER BY finished_at DESC LIMIT 1"
    ),
}


class _RolledBack(Exception):
    pass


LOAD = """
import os, sys, time, json
sys.path.insert(0, {bench!r})
os.environ["DATABASE_URL"] = {url!r}
from common import setup_django
setup_django()
from bench import tasks
from django_jobs import queue
from django_jobs.models import Job
times = {{"enqueue": [], "claim": [], "complete": [], "console read": []}}
deadline = time.monotonic() + {seconds}
while time.monotonic() < deadline:
    t0 = time.perf_counter(); result = tasks.noop.enqueue()
    t1 = time.perf_counter(); jobs = queue.claim(worker_id="load", limited=())
    t2 = time.perf_counter()
    for job in jobs:
        queue.complete(job.id, token=job.claim_token)
    t3 = time.perf_counter()
    list(Job.objects.filter(state="done").order_by("-finished_at")[:1])
    t4 = time.perf_counter()
    times["console read"].append((t3, t4 - t3))
    times["enqueue"].append((t0, t1 - t0))
    times["claim"].append((t1, t2 - t1))
    times["complete"].append((t2, t3 - t2))
print(json.dumps(times))
"""


def timed_drop(day, seconds: float) -> tuple[list[list[str]], list[list[str]]]:
    """``history.drop`` under a steady one-at-a-time load in another process."""
    from django.db import connection

    from django_jobs.queue import history

    script = LOAD.format(
        bench=str(Path(__file__).resolve().parent),
        url=os.environ["DATABASE_URL"],
        seconds=seconds,
    )
    load = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        text=True,
    )
    statements: list[tuple[str, float, float]] = []

    def timer(execute, sql, params, many, context):
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            statements.append((sql, start, time.perf_counter() - start))

    try:
        time.sleep(seconds / 2)
        began = time.perf_counter()
        with connection.execute_wrapper(timer):
            dropped = history.drop(day + timedelta(days=1))
        ended = time.perf_counter()
        out, _ = load.communicate(timeout=seconds * 4 + 60)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait()
    assert dropped, "the day table was not dropped"
    steps = [
        [sql.split(" WHERE")[0][:60], f"{elapsed * 1000:.1f}"]
        for sql, _start, elapsed in statements
    ]
    # The day's locks are taken by its detach (NO INHERIT) and held until
    # that transaction's commit, right after it; its DROP comes after.
    detach = next(start for sql, start, _ in statements if "NO INHERIT" in sql)
    drop = next(start for sql, start, _ in statements if "DROP" in sql)
    steps.append(
        ["the detach's locks: NO INHERIT to commit", f"{(drop - detach) * 1000:.1f}"]
    )
    steps.append(
        ["the detached table's drop, to its commit", f"{(ended - drop) * 1000:.1f}"]
    )
    steps.append(["history.drop, in all", ms(ended - began)])
    times = json.loads(out)
    load_rows = []
    for op, samples in times.items():
        before = [t for at, t in samples if at < began - 0.2]
        during = [t for at, t in samples if began - 0.01 <= at <= ended]
        load_rows.append([
            op,
            len(before),
            f"{statistics.median(before) * 1000:.2f}" if before else "-",
            f"{max(before) * 1000:.2f}" if before else "-",
            len(during),
            f"{max(during) * 1000:.2f}" if during else "-",
        ])  # fmt: skip
    return steps, load_rows


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=17_000_000)
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    setup_django()
    from django.db import connection
    from django.utils import timezone

    from django_jobs.queue import history

    if connection.vendor != "postgresql":
        sys.exit("bench/history_drop.py needs PostgreSQL (set DATABASE_URL).")
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_jobs_job, django_jobs_dependency CASCADE")
    day = history.day_of(timezone.now()) - timedelta(days=40)
    print(f"Filling a day table for {day} with {options.rows:,} done jobs...")
    name = fill(day, options.rows)
    print_table(
        "What dropping a day table locks (history.drop's statements, uncommitted)",
        ["", ""],
        locks_held(name),
    )
    steps, load_rows = timed_drop(day, options.seconds)
    print_table("history.drop, statement by statement", ["statement", "ms"], steps)
    print_table(
        "One job at a time in another process, before and during the drop (ms)",
        ["operation", "before: n", "median", "max", "during: n", "max"],
        load_rows,
    )


if __name__ == "__main__":
    main()
