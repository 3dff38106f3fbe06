"""Where a job's milliseconds go: CPU of each process, per job.

    python bench/perjob.py [--jobs 1000] [--concurrency 1] [--jobs-per-child 1]
                           [--task tasks.noop] [--syscalls]

Runs ``runworker --burst`` over N jobs and divides by N: the supervisor's CPU
(its own stop line), the fork server's and the children's CPU and page
faults (the supervisor's RUSAGE_CHILDREN: it reaps the fork server, which
reaps the children), and the CPU of the supervisor's PostgreSQL backend (its
/proc entry, on this host). With --syscalls, a second run under
``strace -c -f`` counts the system calls per job of the whole worker tree.
Wall time per job, with and without start-up, for scale. PostgreSQL;
DATABASE_URL defaults to .../django_jobs_bench.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, print_table, setup_django, truncate_jobs

STOP = re.compile(
    r"stopped after (\d+) attempt\(s\) in ([\d.]+) s; supervisor CPU ([\d.]+) s"
)
BACKEND = re.compile(r"database connection pid (\d+)")
TICKS = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float:
    """Seconds of CPU a process on this host used so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def run(options, prefix: list[str]) -> tuple[str, float]:
    from django.utils.module_loading import import_string

    truncate_jobs()
    task = import_string(f"bench.{options.task}")
    task.enqueue_many([((i,), {}) for i in range(options.jobs)])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}
    command = [*prefix, sys.executable, "manage.py", "runworker", "--burst"]
    command += ["--concurrency", str(options.concurrency)]
    command += ["--jobs-per-child", str(options.jobs_per_child), "-v", "1"]
    started = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )
    backend, cpu_before, lines = None, 0.0, []
    for line in process.stderr:
        lines.append(line)
        if backend is None and (found := BACKEND.search(line)):
            backend = int(found[1])
            cpu_before = backend_cpu(backend)
        if STOP.search(line) and backend:
            lines.append(f"backend cpu {backend_cpu(backend) - cpu_before}\n")
    process.wait(timeout=600)
    return "".join(lines), time.perf_counter() - started


def measure(options) -> list[list[str]]:
    output, wall = run(options, [])
    stop = STOP.search(output)
    if not stop or int(stop[1]) != options.jobs:
        sys.exit(f"the worker failed:\n{output[-3000:]}")
    jobs = options.jobs
    children = re.search(r"children CPU ([\d.]+) s, (\d+) minor faults", output)
    database = re.search(r"backend cpu ([\d.]+)", output)
    rows = [
        ["wall, with start-up", f"{wall * 1000 / jobs:.3f}"],
        ["wall, after start-up", f"{float(stop[2]) * 1000 / jobs:.3f}"],
        ["supervisor CPU", f"{float(stop[3]) * 1000 / jobs:.3f}"],
    ]
    if children:
        rows.append(
            ["fork server + children CPU", f"{float(children[1]) * 1000 / jobs:.3f}"]
        )
        rows.append(["minor page faults (children)", f"{int(children[2]) / jobs:.0f}"])
    if database:
        rows.append(
            [
                "supervisor's PostgreSQL backend CPU",
                f"{float(database[1]) * 1000 / jobs:.3f}",
            ]
        )
    return rows


def syscalls(options) -> list[list[str]]:
    if not shutil.which("strace"):
        return [["system calls", "(strace is not installed)"]]
    with tempfile.NamedTemporaryFile(suffix=".strace") as report:
        run(options, ["strace", "-c", "-f", "-o", report.name])
        text = Path(report.name).read_text()
    total = re.search(r"^100\.00\s+\S+\s+\S+\s+(\d+)", text, re.MULTILINE)
    rows = [
        [
            "system calls, whole worker",
            f"{int(total[1]) / options.jobs:.0f}" if total else "?",
        ]
    ]
    for line in text.splitlines()[2:12]:
        parts = line.split()
        if len(parts) >= 5 and parts[3].isdigit():
            rows.append([f"  {parts[-1]}", f"{int(parts[3]) / options.jobs:.1f}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--jobs-per-child", type=int, default=1)
    parser.add_argument("--task", default="tasks.noop")
    parser.add_argument("--syscalls", action="store_true")
    options = parser.parse_args()
    setup_django()
    rows = measure(options)
    if options.syscalls:
        rows += syscalls(options)
    truncate_jobs()
    print_table(
        f"Per job: {options.jobs} x bench.{options.task}, runworker --burst "
        f"--concurrency {options.concurrency} "
        f"--jobs-per-child {options.jobs_per_child}",
        ["what", "per job (ms, or count)"],
        rows,
    )


if __name__ == "__main__":
    main()
