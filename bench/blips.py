"""Claims while the worker's database connections are terminated, again and again.

    python bench/blips.py [--jobs 1000] [--rate 50] [--every 0.5] [--concurrency 2]
                          [--spare-listen]

Starts ``runworker`` and enqueues ``--jobs`` no-op jobs at ``--rate`` a
second while, every ``--every`` seconds, ``pg_terminate_backend`` ends each
of the worker's connections (its supervisor's, its LISTEN connection's: the
worker runs with ``PGAPPNAME`` set, which names them; ``--spare-listen``
leaves the LISTEN connection alone). What a failover, a
pooler's restart or an administrator's ``pg_terminate_backend`` does to a
worker, as often as it can be done. Prints, from the job rows, the gaps
between consecutive claims and each job's wait from enqueue to claim (p50,
p99, max, in ms), and how many "unavailable" and "back after" lines the
worker logged. Run it once without terminations (``--every 0``) for the
baseline. PostgreSQL; DATABASE_URL defaults to .../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, print_table, setup_django, truncate_jobs

APPLICATION = "django-jobs-blips"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def start_worker(concurrency: int, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "PGAPPNAME": APPLICATION,
        "PYTHONUNBUFFERED": "1",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "runworker", "--concurrency", str(concurrency)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_until_listening(timeout: float = 60) -> None:
    from django.db import connection

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                [APPLICATION],
            )
            if cursor.fetchone()[0] >= 2:  # the supervisor's and the LISTEN one
                time.sleep(1.0)  # its children forked
                return
        time.sleep(0.1)
    sys.exit("the worker did not start")


class Terminator(threading.Thread):
    """Ends the worker's connections every ``every`` seconds, on its own
    connection, until stopped; counts the connections it ended."""

    def __init__(self, every: float, spare_listen: bool) -> None:
        super().__init__(daemon=True)
        self.every = every
        self.spare = "LISTEN %" if spare_listen else ""
        self.ended = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        from django.db import connection

        while not self.stopped.wait(self.every):
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) "
                    "FROM pg_stat_activity WHERE application_name = %s "
                    "AND query NOT LIKE %s",
                    [APPLICATION, self.spare or "-"],
                )
                self.ended += cursor.fetchone()[0]
        connection.close()


def enqueue(jobs: int, rate: float) -> None:
    from bench import tasks

    started = time.monotonic()
    for i in range(jobs):
        pause = started + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        tasks.noop.enqueue(i)


def wait_until_done(jobs: int, timeout: float) -> None:
    from django_jobs.models import Job

    deadline = time.monotonic() + timeout
    while Job.objects.filter(state="done").count() < jobs:
        if time.monotonic() > deadline:
            sys.exit(f"not every job was done within {timeout:g} s")
        time.sleep(0.2)


def figures() -> tuple[list[float], list[float]]:
    """The gaps between consecutive claims, and each job's wait, in ms."""
    from django_jobs.models import Job

    rows = list(
        Job.objects.order_by("started_at").values_list("enqueued_at", "started_at")
    )
    claims = [started for _, started in rows]
    gaps = [(b - a).total_seconds() * 1000 for a, b in itertools.pairwise(claims)]
    waits = [(started - enqueued).total_seconds() * 1000 for enqueued, started in rows]
    return gaps, waits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50.0, help="jobs/s")
    parser.add_argument(
        "--every", type=float, default=0.5, help="seconds between two (0: none)"
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument(
        "--spare-listen",
        action="store_true",
        help="terminate the supervisor's query connection only, not its LISTEN one",
    )
    parser.add_argument("--keep-log", action="store_true", help="and say where")
    args = parser.parse_args()
    setup_django()
    truncate_jobs()
    with tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False) as log:
        worker = start_worker(args.concurrency, log)
    try:
        wait_until_listening()
        terminator = Terminator(args.every, args.spare_listen)
        if args.every > 0:
            terminator.start()
        enqueue(args.jobs, args.rate)
        wait_until_done(args.jobs, timeout=args.jobs / args.rate + 120)
        terminator.stopped.set()
        if terminator.is_alive():
            terminator.join(timeout=10)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    output = Path(log.name).read_text()
    if args.keep_log:
        print(f"worker log: {log.name}")
    else:
        Path(log.name).unlink()
    gaps, waits = figures()
    rows = [
        (name, f"{percentile(v, 0.5):.1f}", f"{percentile(v, 0.99):.1f}",
         f"{max(v):.1f}")
        for name, v in (("gap between claims", gaps), ("enqueue to claim", waits))
    ]  # fmt: skip
    every = f"every {args.every:g} s" if args.every > 0 else "never"
    which = "query connection" if args.spare_listen else "connections"
    print_table(
        f"{args.jobs} no-op jobs at {args.rate:g}/s, the worker's {which} "
        f"terminated {every} ({terminator.ended} ended)",
        ("ms", "p50", "p99", "max"),
        rows,
    )
    print(
        f"worker log: {output.count(' unavailable (')} 'unavailable' line(s), "
        f"{output.count(' back after ')} 'back after' line(s), "
        f"{output.count('Traceback')} traceback(s)"
    )


if __name__ == "__main__":
    main()
