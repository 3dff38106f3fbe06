"""Many workers, one database: what a fleet costs, whom one job wakes, how it drains.

    python bench/fleet.py [--workers 16] [--idle-seconds 60] [--enqueues 30]
        [--jobs 3000] [--runs 3] [--only idle,herd,drain] [--quick]

Runs a PostgreSQL instance of its own (tests.soak.instance: initdb in a
temporary directory), with fsync and full_page_writes on, so that commits cost
what they cost in production, and pg_stat_statements loaded; DATABASE_URL is
not read. Every worker is ``runworker --concurrency 1`` (one process running
jobs), started in a session of its own so that it and everything it forks
can be found and stopped. The workers log in as the role ``fleet``, the bench
as ``postgres``: pg_stat_statements keeps statements per role, so the bench's
own queries are never counted.

CPU figures come from /proc: the database's is that of the whole instance
(postmaster, auxiliary processes, backends, those that exited included),
less the bench's own backends; "others" is the rest of the machine's busy
CPU, less the database, the workers and the bench, as a share of all its
CPUs: other people's processes, that is noise.

Idle fleet: --workers idle workers, settled for 10 s, watched for
--idle-seconds. The fleet's statements per second (in all, per worker), the
CPU that the database and the workers' processes spend, and the top
statements: calls/s for the fleet, calls/s per worker, share of the calls,
mean execution time, the text cut to one line ("claim:" marks the claim, the
statement with SKIP LOCKED; quotes, casts, aliases and the django_jobs_
prefix of table names dropped).

NOTIFY herd: the same idle fleet, LISTENing. --enqueues times, 2 s apart, one
no-op job is enqueued (its INSERT's trigger NOTIFYs every worker); the window
runs from just before the enqueue until the job is done and 0.1 s more, and
counts the fleet's statements in it. Idle polling claims too: the fleet is
first watched as long without enqueues, and that rate times each window's
length is the background. raw: what ran in the window; net: raw less the
background. A worker that a NOTIFY wakes also postpones its next poll, so net
undercounts and raw overcounts the claims that one enqueue causes, both by
little in a window this short. Then the enqueue-to-start latency of those
jobs: started_at - enqueued_at of their rows (started_at is the claim's time).

Drain: for 1, 2, 4 ... --workers workers, idle and registered on an empty
table, --jobs jobs (a no-op, or one SELECT through the ORM) are enqueued in
one transaction (its commit NOTIFYs them) and drained. jobs/s counts from the
first job started to the last finished (the rows' started_at and
finished_at), so that starting the workers does not count. DB CPU ms/job:
the database's CPU from just before the enqueue until every job is done,
divided by jobs (the enqueue ran on a bench backend: not counted).
lock-wait share: the share of pg_stat_activity samples (5 a second) in which
some worker's backend waited on a heavyweight lock (wait_event_type 'Lock').
Medians of --runs; range is the lowest and highest jobs/s.

--only takes a comma-separated list of idle, herd, drain. --quick: 4 workers,
short windows, 300 jobs, one run: for trying the script, not for figures.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import ROOT, print_table, setup_django, truncate_jobs

sys.path.insert(0, str(ROOT))
from tests.soak.instance import PrivatePostgres

FLEET_ROLE = "fleet"
CLAIM_MARK = "SKIP LOCKED"
SETTLE_SECONDS = 10.0
HERD_SPACING = 2.0
HERD_TAIL = 0.1
SAMPLE_EVERY = 0.2
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
KINDS = {"no-op": "bench.tasks.noop", "ORM": "bench.tasks.select_one"}


# The database


class BenchPostgres(PrivatePostgres):
    """The soak's private instance with what a fleet needs.

    PrivatePostgres writes its settings (fsync off) at create(); these lines
    come after them in postgresql.conf, so they win, for one restart.
    """

    EXTRA = {
        "fsync": "on",
        "full_page_writes": "on",
        "max_connections": "400",
        "shared_preload_libraries": "'pg_stat_statements'",
    }

    def create(self) -> None:
        super().create()
        with open(self.data / "postgresql.conf", "a") as file:
            file.writelines(f"{key} = {value}\n" for key, value in self.EXTRA.items())
        self.restart()
        with self.connect() as connection:
            connection.execute("CREATE EXTENSION pg_stat_statements")
            connection.execute(f"CREATE ROLE {FLEET_ROLE} LOGIN SUPERUSER")

    def url_for(self, role: str) -> str:
        return f"postgres://{role}@127.0.0.1:{self.port}/{self.dbname}"


class Monitor:
    """The bench's own connection to the bench database."""

    def __init__(self, instance: BenchPostgres) -> None:
        self.connection = instance.connect()
        self.fleet_role = self.one(
            "SELECT oid FROM pg_roles WHERE rolname = %s", [FLEET_ROLE]
        )

    def one(self, sql: str, params: list | tuple = ()):
        return self.connection.execute(sql, params).fetchone()[0]

    def own_backends(self) -> list[int]:
        """The server processes of this connection and of Django's."""
        from django.db import connection

        connection.ensure_connection()
        return [
            self.connection.info.backend_pid,
            connection.connection.info.backend_pid,
        ]

    def statements(self) -> list[tuple]:
        """The fleet's statements: (calls, total ms, text), most called first."""
        return self.connection.execute(
            "SELECT calls, total_exec_time, query FROM pg_stat_statements"
            " WHERE userid = %s ORDER BY calls DESC",
            [self.fleet_role],
        ).fetchall()

    def counts(self) -> tuple[int, int]:
        """The fleet's claims and statements since the last reset."""
        claims, total = self.connection.execute(
            "SELECT coalesce(sum(calls) FILTER (WHERE query LIKE %s), 0),"
            " coalesce(sum(calls), 0) FROM pg_stat_statements WHERE userid = %s",
            [f"%{CLAIM_MARK}%", self.fleet_role],
        ).fetchone()
        return int(claims), int(total)


# CPU, from /proc


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from its third field (the state) on; None if gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and of the children it reaped."""
    fields = stat_fields(pid)
    if fields is None:
        return 0.0
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def instance_cpu(instance: BenchPostgres) -> float:
    """The instance's CPU seconds so far: the postmaster and every child, the
    exited ones through the postmaster's reaped-children times."""
    pm = instance.process.pid
    children = Path(f"/proc/{pm}/task/{pm}/children").read_text().split()
    return cpu_seconds(pm) + sum(cpu_seconds(int(child)) for child in children)


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all CPUs), from /proc/stat."""
    user, nice, system, _, _, irq, softirq, steal = map(
        int, Path("/proc/stat").read_text().split()[1:9]
    )
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


class Meter:
    """CPU seconds spent between start and stop, by whom."""

    def __init__(self, instance: BenchPostgres, monitor: Monitor, fleet: Fleet):
        self.instance, self.monitor, self.fleet = instance, monitor, fleet
        self.begin = self.read()

    def read(self) -> dict[str, float]:
        own = sum(cpu_seconds(pid) for pid in self.monitor.own_backends())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "wall": time.monotonic(),
            "db": instance_cpu(self.instance) - own,
            "fleet": self.fleet.cpu(),
            "bench": usage.ru_utime + usage.ru_stime + own,
            "machine": machine_busy(),
        }

    def stop(self) -> dict[str, float]:
        end = self.read()
        spent = {key: end[key] - self.begin[key] for key in end}
        others = spent["machine"] - spent["db"] - spent["fleet"] - spent["bench"]
        spent["others"] = max(0.0, others) / (spent["wall"] * os.cpu_count())
        return spent


# The workers


def processes_in(sessions: set[str]) -> list[int]:
    """Every living (not zombie) process in these sessions."""
    found = []
    for entry in os.listdir("/proc"):
        fields = stat_fields(int(entry)) if entry.isdigit() else None
        if fields and fields[3] in sessions and fields[0] != "Z":
            found.append(int(entry))
    return found


class Fleet:
    """Worker processes, each the leader of a session of its own.

    The fork server's children move to process groups of their own but stay
    in the session: the session id finds every process a worker forked.
    """

    #: The session of every worker ever started, for the last check.
    sessions: set[str] = set()

    def __init__(self, url: str, logs: Path) -> None:
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": url,
            "PYTHONPATH": str(ROOT),
        }
        self.logs = logs
        self.workers: list[subprocess.Popen] = []

    def start(self, count: int) -> None:
        command = [sys.executable, "manage.py", "runworker", "--concurrency", "1"]
        for number in range(count):
            with open(self.logs / f"worker-{number}.log", "wb") as log:
                self.workers.append(
                    subprocess.Popen(
                        command,
                        cwd=ROOT,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
                Fleet.sessions.add(str(self.workers[-1].pid))

    def processes(self) -> list[int]:
        return processes_in({str(worker.pid) for worker in self.workers})

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.processes())

    def check_alive(self) -> None:
        if any(worker.poll() is not None for worker in self.workers):
            self.fail("a worker exited")

    def wait_registered(self, monitor: Monitor, timeout: float = 180) -> None:
        """Until every worker has its row: it then LISTENs and claims."""
        deadline = time.monotonic() + timeout
        registered = "SELECT count(*) FROM django_jobs_worker"
        while monitor.one(registered) < len(self.workers):
            self.check_alive()
            if time.monotonic() > deadline:
                self.fail(f"the workers did not all start in {timeout} s")
            time.sleep(0.2)

    def fail(self, why: str) -> None:
        logs = sorted(self.logs.glob("worker-*.log"))[:2]
        tails = [f"--- {log.name}\n{log.read_text()[-1500:]}" for log in logs]
        raise RuntimeError("\n".join([why, *tails]))

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM the supervisors (they stop their children and remove their
        rows), then SIGKILL whatever is left in their sessions; check that
        nothing is."""
        for worker in self.workers:
            worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(max(0.1, deadline - time.monotonic()))
        for pid in self.processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        for worker in self.workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                worker.wait(max(0.1, deadline - time.monotonic()))
        while (left := self.processes()) and time.monotonic() < deadline:
            time.sleep(0.1)
        if left:
            raise RuntimeError(f"worker processes left behind: {left}")


@contextlib.contextmanager
def running_fleet(instance: BenchPostgres, monitor: Monitor, count: int, logs: Path):
    """``count`` registered workers, all stopped on the way out."""
    monitor.connection.execute("DELETE FROM django_jobs_worker")
    fleet = Fleet(instance.url_for(FLEET_ROLE), logs)
    try:
        fleet.start(count)
        fleet.wait_registered(monitor)
        yield fleet
    finally:
        fleet.stop()


# Idle


def abbreviate(query: str, width: int = 90) -> str:
    """A statement on one line, without quotes, casts, column aliases, table
    qualifiers, long column lists or the django_jobs_ prefix."""
    text = re.sub(r"\s+", " ", query).strip().replace('"', "")
    text = re.sub(r"\bdjango_jobs_\w+\.(?=\w)", "", text)
    text = re.sub(r"::\w+| AS (?!MATERIALIZED)\w+", "", text)
    text = text.replace("django_jobs_", "")
    text = re.sub(r"SELECT (\S+, ){3,}\S+ FROM", "SELECT ... FROM", text)
    text = re.sub(r" RETURNING .*", " RETURNING ...", text)
    if CLAIM_MARK in query:
        text = f"claim: {text}"
    return text if len(text) <= width else text[: width - 3] + "..."


def idle_part(instance, monitor, fleet, seconds: float, top: int) -> None:
    workers = len(fleet.workers)
    monitor.one("SELECT pg_stat_statements_reset()")
    meter = Meter(instance, monitor, fleet)
    time.sleep(seconds)
    spent = meter.stop()
    rows = monitor.statements()
    wall, total = spent["wall"], sum(row[0] for row in rows)
    claims = sum(calls for calls, _, query in rows if CLAIM_MARK in query)
    print(
        f"\nIdle fleet: {workers} workers (--concurrency 1), watched {wall:.0f} s "
        f"after {SETTLE_SECONDS:.0f} s to settle\n"
        f"  statements: {total / wall:,.1f}/s for the fleet, "
        f"{total / wall / workers:.2f}/s per worker, of which claims "
        f"{claims / wall / workers:.2f}/s per worker\n"
        f"  CPU: database {spent['db'] / wall * 1000:.1f} ms/s "
        f"({spent['db'] / wall / workers * 1000:.2f} ms/s per worker); workers' "
        f"processes {spent['fleet'] / wall / workers * 1000:.2f} ms/s per worker; "
        f"others {spent['others']:.0%} of the machine"
    )
    print_table(
        f"Top {min(top, len(rows))} of the idle fleet's {len(rows)} statements",
        ["calls/s", "per worker/s", "share", "mean ms", "statement"],
        [
            [
                f"{calls / wall:.2f}",
                f"{calls / wall / workers:.3f}",
                f"{calls / total:.0%}",
                f"{total_ms / calls:.3f}",
                abbreviate(query).ljust(90),
            ]
            for calls, total_ms, query in rows[:top]
        ],
    )


# Herd


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def wait_done(monitor: Monitor, job_id: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    state = "SELECT state FROM django_jobs_job WHERE id = %s"
    while monitor.one(state, [job_id]) != "done":
        if time.monotonic() > deadline:
            raise RuntimeError(f"job {job_id} not done after {timeout} s")
        time.sleep(0.01)


def herd_part(instance, monitor, fleet, enqueues: int) -> None:
    from bench.tasks import noop

    truncate_jobs()
    meter = Meter(instance, monitor, fleet)
    before, start = monitor.counts(), time.monotonic()
    time.sleep(enqueues * HERD_SPACING)
    after, quiet = monitor.counts(), time.monotonic() - start
    background = [(a - b) / quiet for a, b in zip(after, before, strict=True)]
    windows, raw, ids = [], [], []
    for _ in range(enqueues):
        before, start = monitor.counts(), time.monotonic()
        ids.append(int(noop.enqueue().id))
        wait_done(monitor, ids[-1])
        time.sleep(HERD_TAIL)
        after = monitor.counts()
        windows.append(time.monotonic() - start)
        raw.append([a - b for a, b in zip(after, before, strict=True)])
        time.sleep(max(0.0, start + HERD_SPACING - time.monotonic()))
    spent = meter.stop()
    rows = []
    for column, label in enumerate(["claims", "all statements"]):
        counts = [r[column] for r in raw]
        net = [n - background[column] * w for n, w in zip(counts, windows, strict=True)]
        rows.append(
            [
                label,
                f"{statistics.median(counts):.1f}",
                f"{statistics.mean(counts):.1f}",
                f"{background[column] * statistics.mean(windows):.1f}",
                f"{statistics.median(net):.1f}",
                f"{statistics.mean(net):.1f}",
            ]
        )
    print_table(
        f"NOTIFY herd: {enqueues} single no-op jobs to {len(fleet.workers)} idle "
        f"workers; window: enqueue to done + {HERD_TAIL} s (mean "
        f"{statistics.mean(windows) * 1000:.0f} ms); background from {quiet:.0f} s "
        f"without enqueues",
        [
            "per enqueue",
            "raw median",
            "raw mean",
            "background",
            "net median",
            "net mean",
        ],
        rows,
    )
    spread = sorted(Counter(int(r[0]) for r in raw).items())
    print(
        "  claims per enqueue, raw: "
        + ", ".join(f"{count} claim(s) x{times}" for count, times in spread)
    )
    latency = [
        seconds * 1000
        for (seconds,) in monitor.connection.execute(
            "SELECT extract(epoch FROM started_at - enqueued_at)::float8"
            " FROM django_jobs_job WHERE id = ANY(%s)",
            [ids],
        )
    ]
    print(
        f"  enqueue to start (claim): p50 {percentile(latency, 0.5):.1f} ms, "
        f"p95 {percentile(latency, 0.95):.1f} ms, max {max(latency):.1f} ms; "
        f"others {spent['others']:.0%} of the machine meanwhile"
    )


# Drain


def drain_once(instance, monitor, logs: Path, workers: int, task_path: str, jobs: int):
    """One drain: its jobs/s, DB CPU ms/job, lock-wait share and noise."""
    from django.db import transaction
    from django.utils.module_loading import import_string

    task = import_string(task_path)
    calls = [((i,), {}) for i in range(jobs)]
    truncate_jobs()
    with running_fleet(instance, monitor, workers, logs) as fleet:
        time.sleep(2)  # each worker forks its spare child
        meter = Meter(instance, monitor, fleet)
        with transaction.atomic():
            task.enqueue_many(calls)
        samples = waited = 0
        deadline = time.monotonic() + 60 + jobs * 0.2
        while True:
            left, waiting = monitor.connection.execute(
                "SELECT (SELECT count(*) FROM django_jobs_job"
                "        WHERE state IN ('ready', 'reserved')),"
                " (SELECT count(*) FROM pg_stat_activity"
                "  WHERE usename = %s AND wait_event_type = 'Lock')",
                [FLEET_ROLE],
            ).fetchone()
            samples, waited = samples + 1, waited + bool(waiting)
            if not left:
                break
            fleet.check_alive()
            if time.monotonic() > deadline:
                fleet.fail(f"the drain did not finish: {left} jobs left")
            time.sleep(SAMPLE_EVERY)
        spent = meter.stop()
    done, span = monitor.connection.execute(
        "SELECT count(*) FILTER (WHERE state = 'done'),"
        " extract(epoch FROM max(finished_at) - min(started_at))::float8"
        " FROM django_jobs_job"
    ).fetchone()
    if done != jobs:
        raise RuntimeError(f"{done} of {jobs} jobs done")
    return {
        "rate": jobs / span,
        "cpu_ms": spent["db"] * 1000 / jobs,
        "lock": waited / samples,
        "others": spent["others"],
    }


def drain_part(instance, monitor, logs: Path, sizes, jobs: int, runs: int) -> None:
    rows = []
    for workers in sizes:
        for kind, task_path in KINDS.items():
            results = [
                drain_once(instance, monitor, logs, workers, task_path, jobs)
                for _ in range(runs)
            ]
            rates = [r["rate"] for r in results]
            rows.append(
                [
                    workers,
                    kind,
                    f"{statistics.median(rates):,.0f}",
                    f"{min(rates):,.0f}-{max(rates):,.0f}",
                    f"{statistics.median(r['cpu_ms'] for r in results):.2f}",
                    f"{statistics.median(r['lock'] for r in results):.1%}",
                    f"{statistics.median(r['others'] for r in results):.0%}",
                ]
            )
            print(f"  drained: {rows[-1]}", flush=True)
    truncate_jobs()
    print_table(
        f"Drain {jobs:,} jobs, workers of --concurrency 1, first start to last "
        f"finish ({runs} run(s), medians)",
        ["workers", "kind", "jobs/s", "range", "DB CPU ms/job", "lock-wait share",
         "others"],
        rows,
    )  # fmt: skip


# Main


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--idle-seconds", type=float, default=60)
    parser.add_argument("--enqueues", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--only", default="idle,herd,drain")
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    if options.quick:
        options.workers, options.idle_seconds, options.enqueues = 4, 10, 5
        options.jobs, options.runs = 300, 1
    options.parts = set(options.only.split(","))
    if unknown := options.parts - {"idle", "herd", "drain"}:
        parser.error(f"--only: unknown part(s) {', '.join(sorted(unknown))}")
    return options


@contextlib.contextmanager
def timed(label: str):
    start = time.monotonic()
    yield
    print(f"  ({label} took {time.monotonic() - start:.0f} s)", flush=True)


def main() -> None:
    options = parse_options()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    with (
        BenchPostgres("django_jobs_bench") as instance,
        tempfile.TemporaryDirectory(prefix="fleet-bench-") as logs,
    ):
        instance.create()
        os.environ["DATABASE_URL"] = instance.url_for("postgres")
        setup_django()
        import django_jobs

        monitor = Monitor(instance)
        version = monitor.one("SELECT version()").split(" on ")[0]
        print(f"django_jobs from {Path(django_jobs.__file__).parent}; {version}")
        logs = Path(logs)
        if options.parts & {"idle", "herd"}:
            with running_fleet(instance, monitor, options.workers, logs) as fleet:
                time.sleep(SETTLE_SECONDS)
                if "idle" in options.parts:
                    with timed("idle"):
                        idle_part(
                            instance, monitor, fleet, options.idle_seconds, options.top
                        )
                if "herd" in options.parts:
                    with timed("herd"):
                        herd_part(instance, monitor, fleet, options.enqueues)
        if "drain" in options.parts:
            sizes = [2**i for i in range(8) if 2**i < options.workers]
            sizes.append(options.workers)
            with timed("drain"):
                drain_part(instance, monitor, logs, sizes, options.jobs, options.runs)
    left = processes_in(Fleet.sessions)
    print(
        f"\n{len(Fleet.sessions)} workers started, processes left: {left or 'none'}; "
        f"load average after: {os.getloadavg()}"
    )


if __name__ == "__main__":
    main()
