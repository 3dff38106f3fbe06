"""What tracing costs a no-op drain, one process per job.

    python bench/tracing.py [--jobs 600] [--runs 5] [--lane]

Each run enqueues --jobs no-op jobs (inside a span when an SDK is set up,
so that each job continues a trace) and drains them with one
``runworker --burst --concurrency 2 --jobs-per-child 1``; the cases run in
turn, run after run, and the table gives each one's median rate and its
ratio to tracing off. Cases (bench/tracing_settings.py): off; the API
installed but no SDK; the SDK exporting to a file through a
BatchSpanProcessor (which the worker swaps for its export at the job's end);
the same through a SimpleSpanProcessor. PostgreSQL; DATABASE_URL defaults
to .../django_jobs_bench.

With --lane, the jobs are ``async def`` no-ops (``await_sleep`` with 0 s) of
the async lane's queue ("crawl"), drained by ``--queue crawl --concurrency
1``: one long-lived lane child runs them all, so what is measured is the
lane's spans (each job's run span, exported in batches from the lane's
event loop).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, print_table, setup_django, truncate_jobs

CASES = {
    "off": "tracing off",
    "nosdk": "API installed, no SDK",
    "job": "SDK, batch processor -> export at job end",
    "simple": "SDK, simple processor",
}

ENQUEUE = """
import os, django
django.setup()
from bench.tasks import noop, await_sleep
if {lane}:
    noop = await_sleep.using(queue_name="crawl")
calls = [((i, 0.0) if {lane} else (i,), {{}}) for i in range({jobs})]
if os.environ["BENCH_TRACING"] in ("job", "simple"):
    from opentelemetry import trace
    with trace.get_tracer("bench").start_as_current_span("request"):
        noop.get_backend().enqueue_many(noop, calls)
else:
    noop.get_backend().enqueue_many(noop, calls)
"""


def once(mode: str, jobs: int, spans: str, lane: bool = False) -> float:
    truncate_jobs()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.tracing_settings",
        "BENCH_TRACING": mode,
        "BENCH_SPANS": spans,
    }
    run = {"cwd": ROOT, "env": env, "capture_output": True, "text": True}
    enqueued = subprocess.run(
        [sys.executable, "-c", ENQUEUE.format(jobs=jobs, lane=lane)],
        timeout=300,
        **run,
    )
    if enqueued.returncode:
        sys.exit(enqueued.stderr[-3000:])
    command = [
        sys.executable, "manage.py", "runworker", "--burst",
        "--concurrency", "2", "--jobs-per-child", "1",
    ]  # fmt: skip
    if lane:
        command[-4:] = ["--queue", "crawl", "--concurrency", "1"]
    start = time.perf_counter()
    done = subprocess.run(command, timeout=600, **run)
    wall = time.perf_counter() - start
    if done.returncode or f"stopped after {jobs} attempt(s)" not in done.stderr:
        sys.exit(f"worker failed ({mode}):\n{done.stderr[-3000:]}")
    return jobs / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--lane", action="store_true", help="the async lane's")
    options = parser.parse_args()
    setup_django()
    rates: dict[str, list[float]] = {mode: [] for mode in CASES}
    with tempfile.TemporaryDirectory() as folder:
        spans = os.path.join(folder, "spans.jsonl")
        for _ in range(options.runs):
            for mode in CASES:  # interleaved: drift hits every case alike
                rates[mode].append(once(mode, options.jobs, spans, options.lane))
        with open(spans) as exported:
            exported_count = sum(1 for _ in exported)
    off = statistics.median(rates["off"])
    rows = [
        [
            label,
            f"{statistics.median(rates[mode]):,.0f}",
            f"{min(rates[mode]):,.0f}-{max(rates[mode]):,.0f}",
            f"{statistics.median(rates[mode]) / off:.3f}",
            f"{(1 / statistics.median(rates[mode]) - 1 / off) * 1e6:+,.0f}",
        ]
        for mode, label in CASES.items()
    ]
    how = (
        "async lane, --concurrency 1 (one lane child)"
        if options.lane
        else "--concurrency 2, one process per job"
    )
    print_table(
        f"No-op drain, {how}, {options.jobs} jobs, "
        f"median of {options.runs} runs ({exported_count} spans exported)",
        ["case", "jobs/s", "range", "x off", "us/job vs off"],
        rows,
    )


if __name__ == "__main__":
    main()
