"""Autoscaling: a burst of one-second sleep jobs, drained by one worker of
``--concurrency 2:16`` and by one of a fixed ``--concurrency 2``, same run.

    python bench/autoscale.py [--jobs 600] [--seconds 1.0] [--scaled MIN:MAX]

For each worker: the drain time (from starting the worker to the last job
done, start-up included), jobs/s, the most children it had, its changes of
size; for the autoscaling one, the time from the queue emptying (no ready
job left: the last one claimed) and from the last job done to the worker
being back at MIN, by its row and by its processes (MIN children left:
the spares). Then the ratio of the drain times (the target is 3x or more,
and back at MIN within 60 s). ``SCALE_DOWN_AFTER`` is the default, 30 s.
PostgreSQL; DATABASE_URL defaults to .../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, setup_django, truncate_jobs

CHANGE = re.compile(r"(growing|shrinking) to (\d+) children")
#: How often the bench looks at the jobs, the row and the processes.
LOOK = 0.1


def children_of(pid: int) -> int:
    """Child processes of the worker: its session less the supervisor and
    the fork server."""
    from tests.soak.procs import in_session

    return max(0, len(in_session(pid)) - 2)


class Run:
    """One worker draining the burst, watched every ``LOOK`` seconds."""

    def __init__(self, concurrency: str, jobs: int, least: int) -> None:
        self.concurrency, self.jobs, self.least = concurrency, jobs, least
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 (closed in stop)
            prefix="autoscale-", suffix=".log", delete=False
        )
        self.most_children = 0
        self.emptied = self.drained = self.row_back = self.procs_back = None

    def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
        command = [sys.executable, "manage.py", "runworker"]
        command += ["--concurrency", self.concurrency]
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def watch(self, back_timeout: float) -> None:
        from django_jobs.models import Job, Worker

        deadline = None
        while True:
            clock = time.monotonic() - self.started
            if self.process.poll() is not None:
                sys.exit(f"the worker exited early:\n{self.output()[-3000:]}")
            self.most_children = max(self.most_children, children_of(self.process.pid))
            if self.emptied is None and not Job.objects.filter(state="ready").exists():
                self.emptied = clock
            if self.drained is None:
                if Job.objects.filter(state="done").count() == self.jobs:
                    self.drained = clock
                    deadline = clock + back_timeout
            elif self.back(clock, Worker) or clock > deadline:
                return
            time.sleep(LOOK)

    def back(self, clock: float, workers) -> bool:
        """Whether the worker is back at MIN (row and processes)."""
        if (
            self.row_back is None
            and workers.objects.filter(concurrency=self.least).exists()
        ):
            self.row_back = clock
        if self.procs_back is None and children_of(self.process.pid) <= self.least:
            self.procs_back = clock
        return self.row_back is not None and self.procs_back is not None

    def stop(self) -> None:
        if self.process.poll() is None:  # SIGTERM to the supervisor: a drain
            os.kill(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
        self.log.close()
        self.text = self.output()
        Path(self.log.name).unlink(missing_ok=True)

    def output(self) -> str:
        return Path(self.log.name).read_text()

    def changes(self) -> list[tuple[str, int]]:
        """The changes of size, in order."""
        return [(way, int(size)) for way, size in CHANGE.findall(self.text)]


def drain(concurrency: str, jobs: int, seconds: float, back_timeout: float) -> Run:
    from bench import tasks

    truncate_jobs()
    tasks.nap.enqueue_many([((seconds,), {}) for _ in range(jobs)])
    least = int(concurrency.split(":")[0])
    run = Run(concurrency, jobs, least)
    run.start()
    try:
        run.watch(back_timeout)
    finally:
        run.stop()
    return run


def since(moment: float | None, start: float | None) -> str:
    if moment is None or start is None:
        return "-"
    return f"{moment - start:.1f}"


def row(run: Run) -> list[str]:
    changes = run.changes()
    return [
        f"--concurrency {run.concurrency}",
        f"{run.drained:.1f}",
        f"{run.jobs / run.drained:.2f}",
        str(run.most_children),
        str(max([run.least, *(size for _, size in changes)])),
        str(len(changes)),
        since(run.row_back, run.emptied),
        since(run.procs_back, run.emptied),
        since(run.row_back, run.drained),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=600)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--scaled", default="2:16")
    parser.add_argument("--fixed", default="2")
    options = parser.parse_args()
    setup_django()
    scaled = drain(options.scaled, options.jobs, options.seconds, back_timeout=120)
    fixed = drain(options.fixed, options.jobs, options.seconds, back_timeout=0)
    truncate_jobs()
    print_table(
        f"Drain {options.jobs:,} jobs of {options.seconds:g} s "
        "(seconds from the worker's start; back at MIN: seconds after)",
        [
            "worker",
            "drain s",
            "jobs/s",
            "most child procs",
            "most slots",
            "size changes",
            "MIN (row) after empty",
            "MIN (procs) after empty",
            "MIN (row) after last done",
        ],
        [row(scaled), row(fixed)],
    )
    sizes = " ".join(f"{way[0]}{size}" for way, size in scaled.changes())
    print(f"\n--concurrency {options.scaled}, its sizes (g: grew, s: shrank): {sizes}")
    ratio = fixed.drained / scaled.drained
    print(
        f"\n--concurrency {options.scaled} drained {ratio:.2f}x "
        f"faster than --concurrency {options.fixed} (target: 3x or more); back at "
        f"MIN {since(scaled.row_back, scaled.emptied)} s after the queue emptied "
        "(target: under 60 s)."
    )


if __name__ == "__main__":
    main()
