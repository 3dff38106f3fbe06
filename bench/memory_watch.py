"""The cost of the memory watch: the drain rate with and without a limit.

    python bench/memory_watch.py [--jobs 2000] [--rounds 5] [--naps 100]

No-op jobs, one process per job, --concurrency 2, drained by `runworker
--burst` without a memory limit and with `--max-memory 1GB`, in alternate
rounds of the same run; medians. A no-op job ends before the watch's first
sample (resources.INTERVAL): what it pays is the per-job bookkeeping. The
second case drains --naps jobs that sleep 0.1 s each, so that every job is
sampled (a /proc scan every 50 ms while they run): its cost shows as the
supervisor's CPU time per job. PostgreSQL; DATABASE_URL defaults to
.../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import statistics

from common import print_table, setup_django, truncate_jobs
from drain import drain_once

LIMIT = ("--max-memory", "1GB")


def rounds(count: int, once) -> tuple[list[dict], list[dict]]:
    """``count`` rounds of (without, with) a limit, alternating which goes
    first, so that a drift of the machine falls on both alike."""
    without, limited = [], []
    for n in range(count):
        pair = [(without, ()), (limited, LIMIT)]
        for runs, extra in pair if n % 2 == 0 else reversed(pair):
            runs.append(once(extra))
    return without, limited


def row(label: str, runs: list[dict], base: list[dict] | None) -> list[str]:
    rate = statistics.median(r["rate"] for r in runs)
    cpu = statistics.median(r["cpu_ms"] for r in runs)
    change = ""
    if base is not None:
        base_rate = statistics.median(r["rate"] for r in base)
        change = f"{(rate - base_rate) / base_rate:+.1%}"
    low, high = min(r["rate"] for r in runs), max(r["rate"] for r in runs)
    return [label, f"{rate:,.1f}", f"{low:,.0f}-{high:,.0f}", change, f"{cpu:.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--naps", type=int, default=100)
    options = parser.parse_args()
    setup_django()
    truncate_jobs()
    plain, limited = rounds(
        options.rounds, lambda extra: drain_once(options.jobs, 2, 1, extra=extra)
    )
    rows = [
        row("no-op, c2, no limit", plain, None),
        row("no-op, c2, --max-memory 1GB", limited, plain),
    ]
    if options.naps:
        napping = lambda extra: drain_once(  # noqa: E731
            options.naps, 2, 1, "tasks.doze", extra=extra
        )
        plain_naps, limited_naps = rounds(max(3, options.rounds // 2), napping)
        rows += [
            row("0.1 s naps, c2, no limit", plain_naps, None),
            row("0.1 s naps, c2, --max-memory 1GB", limited_naps, plain_naps),
        ]
    truncate_jobs()
    print_table(
        f"Memory watch: drain rate (median of {options.rounds} alternate rounds; "
        f"naps: {max(3, options.rounds // 2)}), runworker --burst, one process per job",
        ["worker", "jobs/s", "range", "vs no limit", "sup. CPU ms/job"],
        rows,
    )


if __name__ == "__main__":
    main()
