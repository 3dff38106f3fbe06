"""Jobs that await I/O: one process per job, --jobs-per-child, the async lane.

    python bench/async_lane.py [--jobs 1000] [--runs 3] [--seconds 0.1]
                               [--concurrency 2] [--k 100] [--http] [--write]
                               [--only TEXT]
                               [--lane-jobs-per-child N] [--try-lane]

Enqueues N jobs of ``bench.tasks.await_sleep`` (an ``async def`` task that
awaits ``asyncio.sleep(--seconds)``) and drains them with one
``runworker --burst`` per case:

  (a) one process per job:  --queue default --concurrency 2
  (b) --jobs-per-child 100: --queue default --concurrency 2 --jobs-per-child 100
  (c) the async lane:       --queue crawl --concurrency 2 --async-concurrency K
      (queue "crawl" is in OPTIONS["ASYNC_QUEUES"], bench/settings.py)

With --http, the same three again for ``bench.tasks.await_http``: a GET over
asyncio streams to a small HTTP server of this script's own on 127.0.0.1
(in a thread here; it answers each request after --seconds). With --write,
for ``bench.tasks.await_and_write``: the sleep, then one row written through
the async ORM (on SQLite, the jobs' writes queue for its one write lock).

Per case (median of --runs): jobs/s over the wall time with start-up and
after it (the worker's stop line), the CPU per job of the worker's whole
process tree (supervisor, fork server, children: their utime + stime, from
wait4() on the runworker process, start-up included; and after start-up:
the supervisor's and its children's figures from the stop line), the peak
number of jobs in flight (claimed to done, from the rows' started_at and
finished_at: about --concurrency without the lane, up to concurrency x K
with it), and (c)'s and (b)'s ratios to (a).

The lane case runs only where this django_jobs has it: runworker knows
--async-concurrency, OPTIONS knows ASYNC_QUEUES and django_jobs.worker.lane
exists; otherwise its row says "lane not available" and why (--try-lane runs
it all the same). A lane run whose peak in flight is not above --concurrency
is reported as "lane not in effect".

PostgreSQL or SQLite: DATABASE_URL defaults to
postgres://postgres@127.0.0.1:5432/lane_bench (a database of its own, created
if missing; its jobs are deleted before every case); e.g.
DATABASE_URL=sqlite:////tmp/lane_bench.sqlite3 for SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/lane_bench")

from common import ROOT, print_table

STOP = re.compile(
    r"stopped after (\d+) attempt\(s\) in ([\d.]+) s; supervisor CPU ([\d.]+) s; "
    r"peak RSS supervisor \d+ KiB, children \d+ KiB; children CPU ([\d.]+) s"
)
TIMEOUT = 900.0  # seconds one drain may take (one process per job: ~1 minute)


@dataclass
class Case:
    label: str
    flags: list[str]
    lane: bool = False
    runs: list[dict[str, float]] = field(default_factory=list)
    problem: str = ""  # why there is no figure ("lane not available: ...")


def setup() -> str:
    """Django for bench/settings.py on its own database; the vendor."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings")
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor == "postgresql":
        from common import create_database

        create_database()
    call_command("migrate", verbosity=0)
    return connection.vendor


def clear_jobs() -> None:
    from django.db import connection

    tables = [
        "django_jobs_dependency", "django_jobs_job", "django_jobs_workflow",
        "demo_signup",
    ]  # fmt: skip
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY")
        else:
            for table in tables:
                cursor.execute(f"DELETE FROM {table}")


def lane_missing() -> str:
    """Why this checkout cannot run the lane case, or ''."""
    from django.conf import settings

    from django_jobs.conf import JobsOptions

    if "ASYNC_QUEUES" not in JobsOptions.__dataclass_fields__:
        return "OPTIONS has no ASYNC_QUEUES"
    if importlib.util.find_spec("django_jobs.worker.lane") is None:
        return "no django_jobs.worker.lane (the worker side)"
    command = [sys.executable, "manage.py", "runworker", "--help"]
    help_text = subprocess.run(
        command, cwd=ROOT, env=worker_env(), capture_output=True, text=True
    ).stdout
    if "--async-concurrency" not in help_text:
        return "runworker has no --async-concurrency"
    queues = settings.TASKS["default"]["OPTIONS"].get("ASYNC_QUEUES", {})
    if settings.LANE_QUEUE not in queues:
        return f"{settings.LANE_QUEUE!r} is not in OPTIONS['ASYNC_QUEUES']"
    return ""


def worker_env() -> dict[str, str]:
    return {**os.environ, "DJANGO_SETTINGS_MODULE": "bench.settings"}


def wait_tree(process: subprocess.Popen, timeout: float) -> tuple[int, float]:
    """Wait for the runworker process; (its exit status, the CPU seconds of
    its whole tree: every process in it was reaped by its parent)."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return process.returncode, usage.ru_utime + usage.ru_stime
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: ours only
            process.wait()
            raise TimeoutError(f"the worker ran over {timeout:.0f} s")
        time.sleep(0.005)


def peak_in_flight() -> int:
    """Most jobs claimed and not yet done at one time (started_at is set
    at the claim, finished_at at the completion)."""
    from django_jobs.models import Job

    spans = Job.objects.filter(state="done").values_list("started_at", "finished_at")
    events = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
        key=lambda event: (event[0], event[1]),
    )
    peak = running = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def drain(case: Case, options, task, args: tuple) -> dict[str, float]:
    from django_jobs.models import Job

    clear_jobs()
    if case.lane:
        from django.conf import settings

        task = task.using(queue_name=settings.LANE_QUEUE)
    task.enqueue_many([((i, *args), {}) for i in range(options.jobs)])
    command = [sys.executable, "manage.py", "runworker", "--burst", *case.flags]
    with tempfile.TemporaryFile("w+") as stderr:
        start = time.perf_counter()
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=worker_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
        code, tree_cpu = wait_tree(process, TIMEOUT)
        wall = time.perf_counter() - start
        stderr.seek(0)
        log = stderr.read()
    stop = STOP.search(log)
    done = Job.objects.filter(state="done").count()
    if code or not stop or done != options.jobs:
        tail = "\n".join(log.strip().splitlines()[-3:])
        raise RuntimeError(
            f"exit {code}, {done}/{options.jobs} jobs done: {tail[-1500:]}"
        )
    jobs = options.jobs
    return {
        "rate": jobs / wall,
        "wall": wall,
        "steady": jobs / float(stop[2]),
        "cpu_tree": tree_cpu * 1000 / jobs,
        "cpu_run": (float(stop[3]) + float(stop[4])) * 1000 / jobs,
        "peak": peak_in_flight(),
    }


class SlowServer:
    """HTTP/1.0 on 127.0.0.1: answers every request after ``delay`` seconds."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    async def answer(self, reader, writer) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(self.delay)
            writer.write(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def run(self) -> None:
        asyncio.set_event_loop(self.loop)
        server = self.loop.run_until_complete(
            asyncio.start_server(self.answer, "127.0.0.1", 0, backlog=4096)
        )
        self.port = server.sockets[0].getsockname()[1]
        self.ready.set()
        self.loop.run_forever()

    def __enter__(self) -> SlowServer:
        self.thread.start()
        self.ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def cases(options, lane_problem: str) -> list[Case]:
    c = str(options.concurrency)
    lane_flags = ["--queue", "crawl", "--concurrency", c]
    lane_flags += ["--async-concurrency", str(options.k)]
    if options.lane_jobs_per_child:
        lane_flags += ["--jobs-per-child", str(options.lane_jobs_per_child)]
    return [
        Case(
            f"(a) one process per job, -c {c}",
            ["--queue", "default", "--concurrency", c],
        ),
        Case(
            f"(b) -c {c} --jobs-per-child 100",
            ["--queue", "default", "--concurrency", c, "--jobs-per-child", "100"],
        ),
        Case(
            f"(c) lane K={options.k}, -c {c}",
            lane_flags,
            lane=True,
            problem=f"lane not available: {lane_problem}" if lane_problem else "",
        ),
    ]


def median(case: Case, key: str) -> float:
    return statistics.median(run[key] for run in case.runs)


def by_mark(table: list[Case], mark: str) -> Case | None:
    """The case labelled "(a)", "(c)"... if it ran."""
    found = [case for case in table if case.label.startswith(mark) and case.runs]
    return found[0] if found else None


def rows(table: list[Case]) -> list[list[str]]:
    base = by_mark(table, "(a)")
    out = []
    for case in table:
        if not case.runs:
            out.append([case.label, *["-"] * 9])
            continue
        rates = [run["rate"] for run in case.runs]
        speed = cpu = "-"
        if base is not None:
            speed = f"{median(case, 'rate') / median(base, 'rate'):.1f}x"
            cpu = f"{median(case, 'cpu_tree') / median(base, 'cpu_tree'):.2f}x"
        out.append(
            [
                case.label,
                f"{median(case, 'rate'):,.1f}",
                f"{min(rates):,.1f}-{max(rates):,.1f}",
                f"{median(case, 'wall'):.2f}",
                f"{median(case, 'steady'):,.1f}",
                f"{median(case, 'cpu_tree'):.2f}",
                f"{median(case, 'cpu_run'):.2f}",
                f"{max(run['peak'] for run in case.runs)}",
                speed,
                cpu,
            ]
        )
    return out


def verdicts(table: list[Case], k: int, concurrency: int) -> list[str]:
    base, lane = by_mark(table, "(a)"), by_mark(table, "(c)")
    if base is None or lane is None:
        return []
    speed = median(lane, "rate") / median(base, "rate")
    cpu = median(lane, "cpu_tree") / median(base, "cpu_tree")
    return [
        f"lane K={k} vs one process per job at c{concurrency}: {speed:.1f}x "
        f"the jobs/s (target >= 20x: {'met' if speed >= 20 else 'NOT met'}), "
        f"{cpu:.2f}x the CPU per job (target <= 0.5x: "
        f"{'met' if cpu <= 0.5 else 'NOT met'})"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=0.1)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--http", action="store_true")
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--lane-jobs-per-child", type=int, default=0)
    parser.add_argument(
        "--try-lane",
        action="store_true",
        help="run the lane case even where this checkout seems to lack the lane",
    )
    options = parser.parse_args()
    vendor = setup()
    from bench import tasks

    lane_problem = "" if options.try_lane else lane_missing()
    workloads = [("asyncio.sleep", tasks.await_sleep, (options.seconds,), None)]
    if options.http:
        workloads.append(("HTTP GET", tasks.await_http, (), SlowServer))
    if options.write:
        workloads.append(
            ("asyncio.sleep + one row written",
             tasks.await_and_write, (options.seconds,), None)
        )  # fmt: skip
    header = [
        "worker",
        "jobs/s",
        "range",
        "wall s",
        "after start-up",
        "CPU ms/job",
        "after start-up",
        "peak in flight",
        "speed vs (a)",
        "CPU vs (a)",
    ]
    for name, task, args, server_class in workloads:
        table = [
            case for case in cases(options, lane_problem) if options.only in case.label
        ]
        server = server_class(options.seconds) if server_class else None
        if server:
            server.__enter__()
            args = (server.port,)
        failures = []
        try:
            for _ in range(options.runs):
                for case in table:
                    if case.problem:
                        continue
                    try:
                        case.runs.append(drain(case, options, task, args))
                    except (RuntimeError, TimeoutError) as error:
                        case.problem, case.runs = "failed", []
                        failures.append(f"{case.label}: {error}")
                        continue
                    if case.lane and case.runs[-1]["peak"] <= options.concurrency:
                        case.problem = (
                            f"lane not in effect: at most {case.runs[-1]['peak']} "
                            "jobs in flight"
                        )
                        case.runs = []
        finally:
            if server:
                server.__exit__()
        clear_jobs()
        print_table(
            f"{options.jobs:,} async jobs awaiting {name} ({options.seconds:g} s), "
            f"runworker --burst, {vendor}, wall time with start-up, "
            f"median of {options.runs} run(s); CPU = the worker's whole process "
            "tree (supervisor + fork server + children)",
            header,
            rows(table),
        )
        notes = [f"{case.label}: {case.problem}" for case in table if case.problem]
        notes += verdicts(table, options.k, options.concurrency) + failures
        for line in notes:
            print(line)


if __name__ == "__main__":
    main()
