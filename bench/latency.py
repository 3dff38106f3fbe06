"""Enqueue-to-start latency: jobs enqueued one at a time to an idle worker.

    python bench/latency.py [--jobs 200] [--concurrency 2] [--gap 0.02]

Starts `runworker`, waits until it is idle, then enqueues one job at a time
and measures from just before `Task.enqueue()` (so the INSERT and its commit
are included) to the moment the job's code starts in its child process (the
job sends its clock over UDP). Prints p50, p95 and max in milliseconds, for
a task in an app's tasks.py and for one in a module no tasks.py imports
(bench/elsewhere.py), each with a worker of its own.
PostgreSQL (LISTEN/NOTIFY); DATABASE_URL defaults to .../django_jobs_bench.

For scale it then measures, with no worker at all, the database's part of
the same path: ``Task.enqueue()`` on one connection, a second connection
waiting in LISTEN, and on its wake-up a claim (the worker's prepared claim
statement) on a third. No job can start sooner than that on this machine.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time

from common import ROOT, print_table, setup_django, truncate_jobs


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def wait_until_idle(timeout: float = 60) -> None:
    from django_jobs.models import Worker

    deadline = time.monotonic() + timeout
    while not Worker.objects.exists():
        if time.monotonic() > deadline:
            sys.exit("the worker did not start")
        time.sleep(0.1)
    time.sleep(1.0)  # let it fork its children


def database_floor(tasks, jobs: int, gap: float) -> list[float]:
    """Enqueue -> NOTIFY -> claimed, in milliseconds, without a worker."""
    import select

    import psycopg
    from django.db import connections

    from django_jobs import queue
    from django_jobs.models import Worker
    from django_jobs.worker.supervisor_connection import configure_supervisor_connection

    truncate_jobs()
    configure_supervisor_connection("supervisor")
    params = connections["default"].get_connection_params()
    timings = []
    # A worker's row with room, so that new jobs wake it (see queue.wake).
    Worker.objects.create(id="floor", hostname="bench", pid=0, concurrency=2, room=2)
    with psycopg.connect(**params, autocommit=True) as listener:
        listener.execute(f"LISTEN {queue.channel('floor')}")
        for _ in range(jobs):
            time.sleep(gap)
            before = time.perf_counter()
            tasks.noop.enqueue(0)
            select.select([listener.pgconn.socket], [], [], 10)
            listener.pgconn.consume_input()
            while listener.pgconn.notifies() is not None:
                pass
            claimed = queue.claim(
                worker_id="floor", limit=2, prepare=True, limited=[], using="supervisor"
            )
            assert claimed, "the job was not claimed"
            timings.append((time.perf_counter() - before) * 1000)
    Worker.objects.filter(id="floor").delete()
    truncate_jobs()
    return timings


def row(latencies: list[float]) -> list[str]:
    return [
        f"{percentile(latencies, 0.5):.2f}",
        f"{percentile(latencies, 0.95):.2f}",
        f"{max(latencies):.2f}",
        f"{statistics.mean(latencies):.2f}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--gap", type=float, default=0.02)
    options = parser.parse_args()
    setup_django()
    from bench import elsewhere, tasks

    preloaded = measure(tasks.report_start, options)
    other = measure(elsewhere.report_start, options)
    floor = database_floor(tasks, options.jobs, options.gap)
    print_table(
        f"Enqueue-to-start latency, ms ({options.jobs} jobs one at a time, "
        f"runworker --concurrency {options.concurrency}, LISTEN/NOTIFY)",
        ["path", "p50", "p95", "max", "mean"],
        [
            ["enqueue -> job starts (task in tasks.py)", *row(preloaded)],
            ["enqueue -> job starts (task in another module)", *row(other)],
            ["database alone: enqueue -> NOTIFY -> claimed", *row(floor)],
        ],
    )


def measure(task, options) -> list[float]:
    """Latencies of ``task`` jobs, one at a time, to a worker of their own."""
    truncate_jobs()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(10)
    port = receiver.getsockname()[1]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    command = [sys.executable, "manage.py", "runworker"]
    command += ["--concurrency", str(options.concurrency)]
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    latencies = []
    try:
        wait_until_idle()
        for _ in range(options.jobs):
            before = time.time()
            task.enqueue(port)
            started = float(receiver.recv(64))
            latencies.append((started - before) * 1000)
            time.sleep(options.gap)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
        receiver.close()
        truncate_jobs()
    return latencies


if __name__ == "__main__":
    main()
