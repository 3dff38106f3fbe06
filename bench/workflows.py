"""Workflows: what waiting for jobs costs, against jobs that wait for nothing.

    python bench/workflows.py [--jobs 10000] [--runs 3] [--latency 100]

Drain (`runworker --burst --concurrency 2 --jobs-per-child 100`, wall time
including start-up, jobs/s, median of --runs):

- independent: --jobs no-op jobs;
- fan-in: the same jobs in a workflow, and one more job after all of them;
- fan-out: a job of a workflow that enqueues the --jobs no-op jobs itself
  (they join its workflow and hold what waits for it), then a job after it.

For each, the transactions the database committed per job (pg_stat_database
``xact_commit``, read after the worker's sessions ended): every statement the
worker sends outside a transaction is one, so the difference to the
independent jobs is what the workflow costs per finished job.

Latency (one idle worker, --concurrency 1): a fresh job, from just before
``enqueue()`` to the moment its code starts in its child (it sends its clock
over UDP, as bench/latency.py does); and a job that waits for a job of 50 ms
(enqueued while that one runs), from that job's ``finished_at`` (its
completion, which releases the waiting job) to the moment the waiting job's
code starts. p50 and p95 in ms.
PostgreSQL; DATABASE_URL defaults to .../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import time

from common import ROOT, print_table, setup_django, truncate_jobs
from latency import percentile, wait_until_idle

WORKER = [sys.executable, "manage.py", "runworker"]
ENV = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}


def commits() -> int:
    from django.db import connection

    time.sleep(1.0)  # ended sessions report their counts within a moment
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT xact_commit FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
        return cursor.fetchone()[0]


def drain(layout: str, jobs: int) -> tuple[float, float]:
    """Enqueue ``layout``, drain it; jobs/s and commits per job."""
    from bench import tasks
    from django_jobs.models import Job, Workflow
    from django_jobs.workflows import after, workflow

    truncate_jobs()
    Workflow.objects.all().delete()
    calls = [((i,), {}) for i in range(jobs)]
    if layout == "independent":
        tasks.noop.enqueue_many(calls)
        total = jobs
    elif layout == "fan-in":
        with workflow("fan-in"):
            results = tasks.noop.enqueue_many(calls)
            with after(*results):
                tasks.noop.enqueue(-1)
        total = jobs + 1
    else:
        with workflow("fan-out"):
            root = tasks.fan_out.enqueue(jobs)
            with after(root):
                tasks.noop.enqueue(-1)
        total = jobs + 2
    before = commits()
    command = [*WORKER, "--burst", "--concurrency", "2", "--jobs-per-child", "100"]
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=900
    )
    wall = time.perf_counter() - start
    finished = Job.objects.filter(state="done").count()
    if done.returncode or finished != total:
        sys.exit(f"{layout}: {finished} of {total} done:\n{done.stderr[-3000:]}")
    return total / wall, (commits() - before) / total


def latencies(count: int) -> tuple[list[float], list[float]]:
    """Fresh-job and released-job start latencies, in ms."""
    from bench import tasks
    from django_jobs.models import Job
    from django_jobs.workflows import after

    truncate_jobs()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(30)
    port = receiver.getsockname()[1]
    worker = subprocess.Popen(
        [*WORKER, "--concurrency", "1"],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    fresh, released = [], []
    try:
        wait_until_idle()
        for _ in range(count):
            time.sleep(0.03 + random.uniform(0, 0.02))
            before = time.time()
            tasks.report_start.enqueue(port)
            fresh.append((float(receiver.recv(64)) - before) * 1000)
            time.sleep(0.03 + random.uniform(0, 0.02))
            parent = tasks.nap.enqueue(0.05)  # it runs while the next is enqueued
            with after(parent):
                tasks.report_start.enqueue(port)
            started = float(receiver.recv(64))
            finished = Job.objects.get(pk=parent.id).finished_at.timestamp()
            released.append((started - finished) * 1000)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        receiver.close()
    return fresh, released


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency", type=int, default=100)
    options = parser.parse_args()
    setup_django()
    rows = []
    measured = {}
    for layout in ("independent", "fan-in", "fan-out"):
        runs = [drain(layout, options.jobs) for _ in range(options.runs)]
        rates = [rate for rate, _ in runs]
        per_job = statistics.median(commits for _, commits in runs)
        measured[layout] = statistics.median(rates)
        rows.append([
            layout, f"{measured[layout]:,.0f}", f"{min(rates):,.0f}-{max(rates):,.0f}",
            f"{measured[layout] / measured['independent']:.2f}", f"{per_job:.3f}",
        ])  # fmt: skip
    print_table(
        f"Drain of {options.jobs:,} no-op jobs (--concurrency 2 --jobs-per-child 100), "
        f"{options.runs} runs",
        ["layout", "jobs/s", "range", "x independent", "commits/job"],
        rows,
    )
    fresh, released = latencies(options.latency)
    print_table(
        f"Start latency, {options.latency} jobs each (ms)",
        ["job", "p50", "p95", "max"],
        [
            [
                name,
                f"{percentile(v, 0.5):.1f}",
                f"{percentile(v, 0.95):.1f}",
                f"{max(v):.1f}",
            ]
            for name, v in (
                ("fresh (from enqueue)", fresh),
                ("released (from its upstream's end)", released),
            )
        ],
    )
    ratio = percentile(released, 0.5) / percentile(fresh, 0.5)
    print(f"\nreleased p50 / fresh p50 = {ratio:.2f} (target: at most 1.5)")


if __name__ == "__main__":
    main()
