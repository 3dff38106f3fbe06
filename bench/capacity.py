"""What one PostgreSQL core sustains: the database's CPU per enqueue, claim and
completion, and what notifications cost enqueuers that run side by side.

    python bench/capacity.py [--jobs 3000] [--runs 3] [--clients 1,2,4,8]
                             [--seconds 5]

The first table is the server's CPU time (user + system, read from
/proc/<backend pid>/stat, so the server must run on this machine) per
operation, for one client doing one operation at a time: an enqueue (one
INSERT and its trigger, in its own transaction), an enqueue while 16
workers' rows have room (the trigger picks one and NOTIFYs it), an enqueue
with the job table's triggers disabled (no NOTIFY), one job of a bulk
enqueue of 100, a claim of one job (prepared, as the worker does) and its
completion. "per core" is 1 s divided by that CPU: how many a second one
core of the server could do, if nothing else limited it.

The second table runs --clients processes that each enqueue one job per
transaction for --seconds: while every worker is busy (no worker has room,
so the trigger notifies nobody), while 16 idle workers' rows have room
(each enqueue NOTIFYs one), and with the triggers disabled. A transaction
that sends a NOTIFY takes, as it commits, a lock that serialises the
commits of all notifying transactions in the database, including the wait
for their WAL flush.

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/django_jobs_capacity
(created and migrated if missing; its job table is emptied).
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

from common import print_table, setup_django, truncate_jobs

TICKS = os.sysconf("SC_CLK_TCK")
TRIGGERS = ("django_jobs_notify_insert", "django_jobs_notify_update")


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


def cpu_per_op(operation, count: int, alias: str = "default") -> float:
    """Microseconds of server CPU per call of ``operation`` (``count`` calls)."""
    pid = backend_pid(alias)
    before = backend_cpu(pid)
    for i in range(count):
        operation(i)
    return (backend_cpu(pid) - before) / count * 1e6


def set_triggers(enabled: bool) -> None:
    from django.db import connection

    verb = "ENABLE" if enabled else "DISABLE"
    with connection.cursor() as cursor:
        for name in TRIGGERS:
            cursor.execute(f"ALTER TABLE django_jobs_job {verb} TRIGGER {name}")


def set_idle_workers(count: int) -> None:
    from django_jobs.models import Worker

    Worker.objects.all().delete()
    Worker.objects.bulk_create(
        Worker(id=f"idle-{n}", hostname="bench", pid=n, concurrency=1, room=1)
        for n in range(count)
    )


def per_operation(tasks, jobs: int) -> dict[str, float]:
    from django_jobs import queue
    from django_jobs.models import Job

    figures = {}
    truncate_jobs()
    set_idle_workers(0)
    figures["enqueue, nobody to wake"] = cpu_per_op(tasks.noop.enqueue, jobs)
    set_idle_workers(16)
    figures["enqueue, 16 idle workers (one woken)"] = cpu_per_op(
        tasks.noop.enqueue, jobs
    )
    set_triggers(False)
    figures["enqueue, triggers disabled"] = cpu_per_op(tasks.noop.enqueue, jobs)
    set_triggers(True)
    set_idle_workers(0)
    calls = [((i,), {}) for i in range(100)]
    figures["bulk enqueue, per job (100 per statement)"] = cpu_per_op(
        lambda i: tasks.noop.enqueue_many(calls), max(1, jobs // 100)
    ) / len(calls)

    truncate_jobs()
    tasks.noop.enqueue_many([((i,), {}) for i in range(jobs)])
    claimed = []

    def claim_one(i: int) -> None:
        claimed.extend(queue.claim(worker_id="bench", limit=1, prepare=True, room=True))

    set_idle_workers(0)
    figures["claim one job"] = cpu_per_op(claim_one, jobs)
    tokens = iter(claimed)

    def complete_one(i: int) -> None:
        job = next(tokens)
        queue.complete(job.pk, token=job.claim_token)

    figures["complete one job"] = cpu_per_op(complete_one, len(claimed))
    assert Job.objects.filter(state="done").count() == len(claimed)
    truncate_jobs()
    return figures


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--clients", default="1,2,4,8")
    parser.add_argument("--seconds", type=float, default=5.0)
    options = parser.parse_args()
    setup_django()
    from bench import tasks

    try:
        runs = [per_operation(tasks, options.jobs) for _ in range(options.runs)]
        rows = []
        for name in runs[0]:
            micros = statistics.median(run[name] for run in runs)
            rows.append([name, f"{micros:,.0f}", f"{1e6 / micros:,.0f}"])
        print_table(
            f"Server CPU per operation, one client (median of {options.runs} runs)",
            ["operation", "server CPU µs", "per core /s"],
            rows,
        )

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
                set_triggers(enabled)
                rates[name] = statistics.median(
                    concurrent_rate(clients, options.seconds)
                    for _ in range(options.runs)
                )
            rows.append([clients, *(f"{rate:,.0f}" for rate in rates.values())])
        print_table(
            f"Enqueues per second, clients side by side "
            f"(median of {options.runs} runs of {options.seconds:g} s)",
            [
                "clients",
                "busy fleet (no NOTIFY)",
                "16 idle workers (NOTIFY)",
                "triggers disabled",
            ],
            rows,
        )
    finally:
        set_triggers(True)
        set_idle_workers(0)
        truncate_jobs()


if __name__ == "__main__":
    main()
