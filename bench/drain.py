"""Drain rate: N jobs, one `runworker --burst`, wall time including start-up.

    python bench/drain.py [--jobs 2000] [--runs 3] [--history 1000000] [--only TEXT]

Prints jobs/s (median of --runs) for --concurrency 1 and 2 with one job per
child process, and for --jobs-per-child 100; the supervisor's CPU time per
job and the peak RSS of the supervisor and of the largest child. Two kinds
of job (a no-op, and one SELECT through the ORM) and two layouts: the task
in an app's tasks.py (imported by the fork server at start), or in a module
no tasks.py imports (bench/elsewhere.py: imported when its first job comes).
With --history N, a no-op case runs again with N done jobs in the table.
--only keeps the cases whose label contains TEXT. PostgreSQL; DATABASE_URL
defaults to .../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time

from common import ROOT, print_table, setup_django, truncate_jobs

STOP_LINE = re.compile(
    r"stopped after (\d+) attempt\(s\) in ([\d.]+) s; supervisor CPU ([\d.]+) s; "
    r"peak RSS supervisor (\d+) KiB, children (\d+) KiB"
)


def drain_once(
    jobs: int,
    concurrency: int,
    per_child: int,
    task: str = "tasks.noop",
    extra: tuple[str, ...] = (),
    args: tuple = (),
) -> dict[str, float]:
    """One drain; ``extra``: more runworker flags, ``args``: each job's
    arguments after its number."""
    from django.utils.module_loading import import_string

    from django_jobs.models import Job

    Job.objects.filter(state="ready").delete()
    calls = [((i, *args), {}) for i in range(jobs)]
    import_string(f"bench.{task}").enqueue_many(calls)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    command = [
        sys.executable, "manage.py", "runworker", "--burst",
        "--concurrency", str(concurrency), "--jobs-per-child", str(per_child),
        *extra,
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    wall = time.perf_counter() - start
    match = STOP_LINE.search(done.stderr)
    if done.returncode or not match or int(match[1]) != jobs:
        sys.exit(f"worker failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return {
        "rate": jobs / wall,
        "steady": jobs / float(match[2]),
        "cpu_ms": float(match[3]) * 1000 / jobs,
        "rss_sup": int(match[4]) / 1024,
        "rss_child": int(match[5]) / 1024,
    }


def row(label: str, runs: list[dict[str, float]]) -> list[str]:
    rates = [r["rate"] for r in runs]
    return [
        label,
        f"{statistics.median(rates):,.0f}",
        f"{min(rates):,.0f}-{max(rates):,.0f}",
        f"{statistics.median(r['steady'] for r in runs):,.0f}",
        f"{statistics.median(r['cpu_ms'] for r in runs):.3f}",
        f"{max(r['rss_sup'] for r in runs):.0f}",
        f"{max(r['rss_child'] for r in runs):.0f}",
    ]


def fork_baseline(forks: int = 300) -> float:
    """Milliseconds for a bare fork + exit + wait of this Django-loaded process."""
    from django.db import connections
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("tasks")
    connections.close_all()
    start = time.perf_counter()
    for _ in range(forks):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    return (time.perf_counter() - start) / forks * 1000


def add_history(count: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            """INSERT INTO django_jobs_job (backend, queue, task_path, args, kwargs,
                state, priority, run_at, ttr, attempts, max_attempts, on_failure,
                enqueued_at, started_at, finished_at, reserved_by, claim_token,
                worker_ids, errors, return_value)
            SELECT 'default', 'default', 'bench.tasks.noop', '[0]', '{}', 'done', 0,
                now(), 300, 1, 3, 'bury', now(), now(), now(), '', '', '["w"]', '[]',
                'null'
            FROM generate_series(1, %s)""",
            [count],
        )
        cursor.execute("VACUUM ANALYZE django_jobs_job")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--history", type=int, default=0)
    parser.add_argument("--only", default="")
    options = parser.parse_args()
    setup_django()
    cases = [
        ("no-op, tasks.py, --concurrency 1", 1, 1, "tasks.noop"),
        ("no-op, tasks.py, --concurrency 2", 2, 1, "tasks.noop"),
        ("no-op, tasks.py, --concurrency 2 --jobs-per-child 100", 2, 100, "tasks.noop"),
        ("no-op, other module, --concurrency 2", 2, 1, "elsewhere.noop"),
        ("no-op, other module, -c 2 --jobs-per-child 100", 2, 100, "elsewhere.noop"),
        ("ORM, tasks.py, --concurrency 2", 2, 1, "tasks.select_one"),
        ("ORM, tasks.py, -c 2 --jobs-per-child 100", 2, 100, "tasks.select_one"),
        ("ORM, other module, --concurrency 2", 2, 1, "elsewhere.select_one"),
    ]
    rows = []
    truncate_jobs()
    for label, concurrency, per_child, task in cases:
        if options.only not in label:
            continue
        runs = [
            drain_once(options.jobs, concurrency, per_child, task)
            for _ in range(options.runs)
        ]
        rows.append(row(label, runs))
    if options.history:
        truncate_jobs()
        add_history(options.history)
        runs = [drain_once(options.jobs, 2, 1) for _ in range(options.runs)]
        label = f"no-op, tasks.py, --concurrency 2, {options.history:,} done jobs"
        rows.append(row(label, runs))
    truncate_jobs()
    baseline = fork_baseline()
    print_table(
        f"Drain {options.jobs:,} no-op jobs, runworker --burst, wall time with "
        f"start-up ({options.runs} runs)",
        [
            "worker",
            "jobs/s",
            "range",
            "after start-up",
            "sup. CPU ms/job",
            "RSS sup. MiB",
            "RSS child MiB",
        ],
        rows,
    )
    print(
        f"\nFor scale: a bare fork + exit + wait of this Django-loaded process "
        f"takes {baseline:.2f} ms on this machine."
    )


if __name__ == "__main__":
    main()
