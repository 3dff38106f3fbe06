"""What one PostgreSQL core sustains: the database's CPU, statements and WAL
per enqueue, claim and completion, one at a time and in the batches the
worker uses, where the CPU goes, the hot statements' plans at 10 thousand
and 10 million rows, and what notifications cost enqueuers side by side.

    python bench/capacity.py [--jobs 3000] [--runs 3] [--clients 1,2,4,8]
                             [--seconds 5]
    python bench/capacity.py --anatomy [--jobs 2000] [--runs 3]
    python bench/capacity.py --explain 10000,10000000 [--jobs 2000] [--runs 3]
                             [--refill]

The first table is, per job, for one client doing one operation at a time
(each in its own transaction, as the worker's are): the server's CPU time
(user + system, read from /proc/<backend pid>/stat, so the server must run
on this machine; the clock ticks every 10 ms, so the bulk enqueue runs ten
times --jobs jobs), "per core" (1 s divided by that CPU: how many a second
one core of the server could do, if nothing else limited it), the
statements the Django connection sent (transaction control not counted),
the WAL the operation's own transactions wrote (pg_walinspect, created in
the database: the records whose xid wrote the rows), the whole cluster's
WAL meanwhile (insert LSN before and after: it counts whatever else the
server did), the job rows' updates and the share of them that were HOT
(pg_stat_user_tables, flushed with pg_stat_force_next_flush(): PostgreSQL
15). See bench/capacity_measure.py.

The operations: an enqueue (``task.enqueue``: one INSERT and its triggers)
while no worker has room, while 16 workers' rows have room (the trigger
picks one and NOTIFYs it) and with the two NOTIFY triggers disabled; one
job of a bulk enqueue of 100 (``enqueue_many``); the worker's claim
(``queue.claim(limit=N, prepare=True, room=True, limited=())``) of one job
and of 10 at once (a worker with room for several claims them in one
statement), by a worker whose row says, before each claim, that it has
room (written on another connection, as its heartbeat would, and not
counted), so that each claim also writes the room, as when the worker
asks it to; the worker's completion (``queue.complete_returning(...,
prepare=True)``) of one job and of 10 in one statement (--jobs-per-child);
then their sums per job, one at a time and batched. The connection
prepares what asks to be prepared and nothing else: Django's default
(psycopg's prepare_threshold None) prepares nothing, not even the worker's
claim and completion (docs/pgbouncer.rst); --anatomy's "prepare=False"
line is what that costs.

Then: each operation's own WAL by relation and record type (the heap row,
each index written, the worker's row written by the claim, TOAST, the
commit); how PostgreSQL planned the prepared claims and completions
(generic plan or a custom plan at every execution); the indexes that read
a column the claim or the completion changes (while one does, no update
of a job can be HOT: every index whose predicate the new row meets gets a
new entry); the size of a ready and a done job's row, of its JSON columns
and of the table's TOAST.

The last table runs --clients processes that each enqueue one job per
transaction for --seconds: while every worker is busy (no worker has room,
so the trigger notifies nobody), while 16 idle workers' rows have room
(each enqueue NOTIFYs one), and with the NOTIFY triggers disabled. A
transaction that sends a NOTIFY takes, as it commits, a lock that
serialises the commits of all notifying transactions in the database,
including the wait for their WAL flush.

--anatomy (bench/capacity_anatomy.py) prints, instead, the CPU and WAL of
one enqueue, claim and completion with each piece removed in turn, against
the baseline: each index of the job table but its primary key (dropped,
then recreated from its definition in pg_indexes), all of them, the NOTIFY
triggers, every trigger, the room write (``room=False``) and the
statements' preparation (``prepare=False``).

--explain ROWS,... (bench/capacity_explain.py) prints, instead, for a job
table of each size: EXPLAIN (ANALYZE, BUFFERS) of the claim and of the
completion (prepared, at their sixth execution, as the worker runs them)
and of the enqueue's INSERT, each in a transaction rolled back, and the
first table's one-at-a-time lines at that size. The table is filled by one
INSERT ... SELECT FROM generate_series: a week of jobs, mostly done, 2%
buried, 50 reserved and 1,000 ready. Tables of a million rows or more are
kept in the database named DATABASE_URL's name + "_big", smaller ones in
name + "_small", until a run asks for another size there (or --refill).

bench/capacity_report.py prints the tables. DATABASE_URL defaults to
postgres://postgres@127.0.0.1:5432/django_jobs_capacity (created and
migrated if missing; its job table is emptied). Whatever a run removes
(index, trigger) it puts back, and a run puts back what a killed run left
removed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import time

os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/django_jobs_capacity"
)

import capacity_measure as m
import capacity_report as r
from capacity_report import (
    BULK,
    CLAIM,
    CLAIM_10,
    COMPLETE,
    COMPLETE_10,
    ENQUEUE,
    MOVE,
)
from common import print_table, setup_django, truncate_jobs

SUMS = {
    "per job, one at a time: enqueue + claim + complete": (ENQUEUE, CLAIM, COMPLETE),
    "per job, batched: bulk enqueue(100) + claim(10) + complete(10)": (
        BULK,
        CLAIM_10,
        COMPLETE_10,
    ),
    "per job, one at a time, and its move to the history": (
        ENQUEUE,
        CLAIM,
        COMPLETE,
        MOVE,
    ),
    "per job, batched, and its move to the history": (
        BULK,
        CLAIM_10,
        COMPLETE_10,
        MOVE,
    ),
}
JSON_COLUMNS = (
    "args", "kwargs", "worker_ids", "errors", "return_value", "logs", "usage",
    "checkpoint", "progress",
)  # fmt: skip


def set_idle_workers(count: int) -> None:
    m.unseat_workers()
    m.seat_workers("idle", count, 1)


def per_operation(tasks, jobs: int) -> tuple[dict[str, m.Cost], dict]:
    from django.utils import timezone

    from django_jobs import queue

    calls = [((i,), {}) for i in range(100)]
    costs = {}
    truncate_jobs()
    set_idle_workers(16)
    costs["enqueue, 16 idle workers (one woken)"] = m.measure(
        tasks.noop.enqueue, jobs, jobs, m.ids_after(0)
    )
    set_idle_workers(0)
    m.set_triggers(False)
    try:
        first = m.last_id()
        costs["enqueue, NOTIFY triggers disabled"] = m.measure(
            tasks.noop.enqueue, jobs, jobs, m.ids_after(first)
        )
    finally:
        m.set_triggers(True)
    first = m.last_id()
    costs[BULK] = m.measure(  # ten times the jobs: enough clock ticks
        lambda i: tasks.noop.enqueue_many(calls),
        jobs // 10,
        jobs // 10 * 100,
        m.ids_after(first),
    )
    truncate_jobs()
    costs[ENQUEUE] = m.measure(tasks.noop.enqueue, jobs, jobs, m.ids_after(0))
    rows = {"ready": row_sizes()}
    for _ in range(jobs // 100):  # for the claims of 10
        tasks.noop.enqueue_many(calls)
    one, ten = [], []
    m.seat_workers("bench", 2, 1)
    try:
        costs[CLAIM] = m.measure(
            m.claimer(one, 1, "bench-0"), jobs, jobs, lambda: [j.pk for j in one]
        )
        costs[CLAIM_10] = m.measure(
            m.claimer(ten, 10, "bench-1"),
            jobs // 10,
            jobs,
            lambda: [j.pk for j in ten],
        )
    finally:
        m.unseat_workers()
    costs[COMPLETE] = m.measure(
        m.completer(one, 1), jobs, jobs, lambda: [j.pk for j in one]
    )
    costs[COMPLETE_10] = m.measure(
        m.completer(ten, 10), jobs // 10, jobs, lambda: [j.pk for j in ten]
    )
    rows["done"] = row_sizes()
    done = one + ten
    if hasattr(queue, "history"):  # not in a release older than the history
        costs[MOVE] = m.measure(  # as the History duty does, a second later
            lambda i: queue.history.move(before=timezone.now()),
            -(-len(done) // queue.history.BATCH),
            len(done),
            lambda: [j.pk for j in done],
        )
    truncate_jobs()
    return costs, rows


def row_sizes() -> tuple[float, float, int]:
    """The job rows' mean size, that of their JSON columns, and the bytes of
    the table's TOAST."""
    json = " + ".join(f"coalesce(pg_column_size({name}), 0)" for name in JSON_COLUMNS)
    return m.one(
        f"SELECT avg(pg_column_size(j.*)), avg({json}),"
        " (SELECT pg_relation_size(reltoastrelid) FROM pg_class"
        f" WHERE oid = '{m.TABLE}'::regclass) FROM {m.TABLE} j"
    )


def enqueue_for(seconds: float, counter) -> None:
    """One client: enqueue one job per transaction for ``seconds``."""
    from django.db import connections

    connections.close_all()  # the parent's connection is not ours
    from bench import tasks

    done = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        tasks.noop.enqueue(done)
        done += 1
    with counter.get_lock():
        counter.value += done


def concurrent_rate(clients: int, seconds: float) -> float:
    from django.db import connections

    truncate_jobs()
    connections.close_all()
    counter = multiprocessing.Value("l", 0)
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=enqueue_for, args=(seconds, counter))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(seconds + 60)
        if process.is_alive():
            process.kill()
            raise SystemExit("an enqueuing client did not finish")
    return counter.value / seconds


def tables(tasks, options) -> None:
    jobs = max(100, (options.jobs or 3000) // 100 * 100)
    m.warm_up(tasks.noop.enqueue)
    runs = [per_operation(tasks, jobs) for _ in range(options.runs)]
    order = [ENQUEUE, *(name for name in runs[0][0] if name != ENQUEUE)]
    costs = {name: m.median([run[0][name] for run in runs]) for name in order}
    r.print_costs(
        f"Per job, one client, {jobs:,} jobs (median of {options.runs} runs)",
        costs,
        SUMS,
    )
    if m.walinspect:
        r.print_wal(costs)
    r.print_plans()
    r.print_not_hot(runs[-1][1])

    rows = []
    cases = {
        "fleet busy": (0, True),
        "16 idle": (16, True),
        "no triggers": (0, False),
    }
    for clients in (int(n) for n in options.clients.split(",")):
        rates = {}
        for name, (idle, enabled) in cases.items():
            set_idle_workers(idle)
            m.set_triggers(enabled)
            rates[name] = statistics.median(
                concurrent_rate(clients, options.seconds) for _ in range(options.runs)
            )
        rows.append([clients, *(f"{rate:,.0f}" for rate in rates.values())])
    print_table(
        f"Enqueues per second, clients side by side "
        f"(median of {options.runs} runs of {options.seconds:g} s)",
        [
            "clients",
            "busy fleet (no NOTIFY)",
            "16 idle workers (NOTIFY)",
            "NOTIFY triggers disabled",
        ],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, help="3000; 2000 with --anatomy/--explain")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--anatomy", action="store_true")
    parser.add_argument("--explain", metavar="ROWS", help="e.g. 10000,10000000")
    parser.add_argument("--refill", action="store_true")
    options = parser.parse_args()
    setup_django()
    from bench import tasks

    m.prepare()
    try:
        if options.explain:
            import capacity_explain

            sizes = [int(n) for n in options.explain.split(",")]
            capacity_explain.run(tasks, sizes, options)
        elif options.anatomy:
            import capacity_anatomy

            capacity_anatomy.run(tasks, options)
        else:
            tables(tasks, options)
    finally:
        m.repair()  # indexes and triggers
        m.unseat_workers()
        if not options.explain:
            truncate_jobs()


if __name__ == "__main__":
    main()
