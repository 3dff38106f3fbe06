"""A held snapshot under a steady load: completion rate and the hot table's size.

    python bench/vacuum.py [--rate 100] [--minutes 10,10,5] [--concurrency 2]
        [--jobs-per-child 100] [--warmup 90] [--vacuum-every auto]

The issue's target: under a snapshot held for 10 minutes at a steady 100
jobs/s, the completion rate stays at least 90% of the rate without it, and
the hot table (``django_jobs_job`` itself, without the history's day tables)
is back to its normal size within 5 minutes after the snapshot goes.

One ``runworker --concurrency 2 --jobs-per-child 100`` and, in this process,
an enqueuer of ``bench.tasks.noop`` at --rate jobs a second, one job per
transaction, paced by the clock (what is due, every 10 ms). After --warmup
seconds, three phases of --minutes each: "baseline" (no held snapshot),
"held" (a connection of the bench runs ``BEGIN ISOLATION LEVEL REPEATABLE
READ; SELECT count(*) FROM django_jobs_worker`` and sits idle in that
transaction for the whole phase: its snapshot keeps vacuum from removing
any row version that died after it) and "after" (the snapshot released).

Every 10 s one line: completions a second in the interval (done jobs by
finished_at, wherever they are: hot table or day tables), jobs enqueued a
second, the ready backlog, the hot table's size (``pg_total_relation_size``:
on an inheritance parent, the parent alone with its indexes and TOAST; the
run checks it at the end) and its heap alone, its live and dead tuples
(pg_stat_user_tables), the vacuums it has had, and the p50/p95 wait from
enqueue to start of the jobs started in the interval. Then a summary by
phase, the ratio of the held phase's completion rate to the baseline's
(target >= 0.90) and how long after the release the hot table's size came
back within 20% of the baseline's median (and its heap's: a VACUUM gives
back the empty pages at a heap's end, never an index's pages).

Vacuum: what shrinks the hot table is (auto)vacuum. Where the server runs
with ``autovacuum = off`` (this repository's CI PostgreSQL does), the bench
stands in for it (--vacuum-every auto, the default): every
``autovacuum_naptime`` it applies autovacuum's thresholds to the hot table
and runs the VACUUM / ANALYZE autovacuum would, throttled like autovacuum
(``vacuum_cost_delay`` = ``autovacuum_vacuum_cost_delay``). --vacuum-every 0
never does (the server's autovacuum only); N: every N s by the same rules.

PostgreSQL; DATABASE_URL defaults to .../django_jobs_vacuum (created and
migrated, its job table truncated at start). It runs for --warmup plus the
three phases (the default: 26.5 minutes). A smoke run of 4.5 minutes:
``python bench/vacuum.py --minutes 1,1,1``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from common import ROOT, print_table, setup_django, truncate_jobs

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/django_jobs_vacuum"
HOT = "django_jobs_job"
PHASES = ("baseline", "held", "after")
SAMPLE = 10.0  # seconds between two lines
TICK = 0.01  # the enqueuer's pace
NORMAL = 1.2  # "back to normal": within 20% of the baseline's median size
MB = 1024 * 1024


def connect(autocommit: bool = True):
    """A psycopg connection of the bench's own to the bench database."""
    import psycopg
    from django.db import connection

    return psycopg.connect(**connection.get_connection_params(), autocommit=autocommit)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# The load


class Enqueuer(threading.Thread):
    """Enqueues no-op jobs at ``rate`` a second, one per transaction: every
    TICK, what is due by the clock since the start."""

    def __init__(self, rate: float) -> None:
        super().__init__(daemon=True, name="enqueuer")
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        from django.db import connection, transaction

        from bench.tasks import noop

        start = time.monotonic()
        try:
            while not self.stopping.is_set():
                due = int((time.monotonic() - start) * self.rate)
                while self.sent < due and not self.stopping.is_set():
                    with transaction.atomic():
                        noop.enqueue(self.sent)
                    self.sent += 1
                time.sleep(TICK - (time.monotonic() - start) % TICK)
        except BaseException as exc:  # reported by the main thread
            self.error = exc
        finally:
            connection.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=30)


def start_worker(options, log) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "runworker"]
    command += ["--concurrency", str(options.concurrency)]
    command += ["--jobs-per-child", str(options.jobs_per_child)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, for the clean-up
    )


def stop_worker(worker: subprocess.Popen, timeout: float = 30) -> None:
    """SIGTERM (it finishes its running jobs), SIGKILL after ``timeout``; then
    SIGKILL to its process group, for any child left behind."""
    if worker.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(worker.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        worker.wait(timeout=10)


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_registered(monitor, worker: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 120
    query = "SELECT count(*) FROM django_jobs_worker WHERE pid = %s"
    while not monitor.execute(query, [worker.pid]).fetchone()[0]:
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start:\n{log_tail(log)}")
        time.sleep(0.2)


class HeldSnapshot:
    """A connection idle in a REPEATABLE READ transaction that has taken its
    snapshot (its first statement): the server's xmin horizon stays there."""

    def __init__(self) -> None:
        self.connection = connect()
        self.connection.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        self.connection.execute("SELECT count(*) FROM django_jobs_worker").fetchone()
        self.pid = self.connection.info.backend_pid

    def release(self) -> None:
        self.connection.execute("COMMIT")

    def close(self) -> None:
        self.connection.close()


class VacuumStandIn(threading.Thread):
    """What autovacuum would do to the hot table, on a server where it is
    off: every ``every`` s, its vacuum, insert-vacuum and analyze thresholds
    (the server's settings), then VACUUM and/or ANALYZE, throttled as
    autovacuum is. Its own connection."""

    def __init__(self, every: float) -> None:
        super().__init__(daemon=True, name="vacuum")
        self.every = every
        #: (when, by time.monotonic(); what; how many seconds it took)
        self.runs: list[tuple[float, str, float]] = []
        self.error: BaseException | None = None
        self.stopping = threading.Event()

    def run(self) -> None:
        try:
            with connect() as db:
                settings = dict(
                    db.execute(
                        "SELECT name, setting FROM pg_settings"
                        " WHERE name LIKE 'autovacuum%' OR name = 'vacuum_cost_limit'"
                    ).fetchall()
                )
                limit = float(settings["autovacuum_vacuum_cost_limit"])
                if limit < 0:
                    limit = float(settings["vacuum_cost_limit"])
                delay = float(settings["autovacuum_vacuum_cost_delay"])
                db.execute(f"SET vacuum_cost_delay = '{delay}ms'")
                db.execute(f"SET vacuum_cost_limit = {int(limit)}")
                while not self.stopping.wait(self.every):
                    self.once(db, settings)
        except BaseException as exc:  # reported by the main thread
            self.error = exc

    def once(self, db, settings: dict[str, str]) -> None:
        tuples, dead, inserted, modified = db.execute(
            "SELECT greatest(c.reltuples, 0), s.n_dead_tup, s.n_ins_since_vacuum,"
            " s.n_mod_since_analyze FROM pg_class c"
            " JOIN pg_stat_user_tables s ON s.relid = c.oid"
            " WHERE c.oid = %s::regclass",
            [HOT],
        ).fetchone()

        def over(count: float, kind: str) -> bool:
            threshold = float(settings[f"autovacuum_{kind}_threshold"])
            factor = float(settings[f"autovacuum_{kind}_scale_factor"])
            return count > threshold + factor * tuples

        vacuum = over(dead, "vacuum") or over(inserted, "vacuum_insert")
        analyze = over(modified, "analyze")
        if not (vacuum or analyze):
            return
        what = "VACUUM (ANALYZE)" if vacuum and analyze else "VACUUM"
        what = what if vacuum else "ANALYZE"
        start = time.monotonic()
        db.execute(f"{what} {HOT}")
        self.runs.append((start, what, time.monotonic() - start))

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=120)


# The measurements


class Sample:
    def __init__(self, phase: str, elapsed: float, seconds: float, row: tuple) -> None:
        self.phase, self.elapsed, self.seconds = phase, elapsed, seconds
        (
            self.done,
            self.ready,
            self.size,
            self.heap,
            self.live,
            self.dead,
            self.vacuums,
            self.p50,
            self.p95,
        ) = row
        self.enqueued = 0
        self.at = time.time()  # the interval's end (as the caller sets it)

    @property
    def rate(self) -> float:
        return self.done / self.seconds

    def line(self) -> str:
        latency = (
            f"{self.p50:7.0f} {self.p95:7.0f}"
            if self.p50 is not None
            else f"{'-':>7} {'-':>7}"
        )
        return (
            f"{self.phase:<8} {self.elapsed:6.0f} {self.rate:7.1f}"
            f" {self.enqueued / self.seconds:7.1f} {self.ready:7d}"
            f" {self.size / MB:8.2f} {self.heap / MB:7.2f} {self.live:8d}"
            f" {self.dead:8d} {self.vacuums:4d} {latency}"
        )


HEADER = (
    f"{'phase':<8} {'s':>6} {'done/s':>7} {'enq/s':>7} {'ready':>7}"
    f" {'hot MB':>8} {'heap MB':>7} {'live':>8} {'dead':>8} {'vac':>4}"
    f" {'p50 ms':>7} {'p95 ms':>7}"
)

SAMPLE_SQL = f"""
SELECT
    (SELECT count(*) FROM {HOT}
     WHERE state = 'done' AND finished_at >= %(start)s AND finished_at < %(end)s),
    (SELECT count(*) FROM {HOT} WHERE state = 'ready'),
    pg_total_relation_size('{HOT}'),
    pg_relation_size('{HOT}'),
    s.n_live_tup,
    s.n_dead_tup,
    s.vacuum_count + s.autovacuum_count,
    w.p50,
    w.p95
FROM pg_stat_user_tables s,
    (SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY wait) AS p50,
            percentile_cont(0.95) WITHIN GROUP (ORDER BY wait) AS p95
     FROM (SELECT extract(epoch FROM started_at - enqueued_at) * 1000 AS wait
           FROM {HOT} WHERE started_at >= %(start)s AND started_at < %(end)s) j) w
WHERE s.relid = '{HOT}'::regclass
"""

PHASE_LATENCY_SQL = f"""
SELECT count(*),
    percentile_cont(0.5) WITHIN GROUP (ORDER BY wait),
    percentile_cont(0.95) WITHIN GROUP (ORDER BY wait)
FROM (SELECT extract(epoch FROM started_at - enqueued_at) * 1000 AS wait
      FROM {HOT} WHERE started_at >= %s AND started_at < %s) j
"""


def sample(monitor, phase: str, elapsed: float, start: datetime, end: datetime):
    row = monitor.execute(SAMPLE_SQL, {"start": start, "end": end}).fetchone()
    return Sample(phase, elapsed, (end - start).total_seconds(), row)


def check_held(monitor, held: HeldSnapshot) -> str | None:
    """A warning if the held transaction is not (or no longer) holding its
    snapshot; None while it is."""
    row = monitor.execute(
        "SELECT state, backend_xmin FROM pg_stat_activity WHERE pid = %s", [held.pid]
    ).fetchone()
    if row is None:
        return f"the held snapshot's session (pid {held.pid}) is gone"
    if row[0] != "idle in transaction" or row[1] is None:
        return f"the held session is {row[0]!r} with backend_xmin {row[1]}"
    return None


def size_check(monitor) -> str:
    """That pg_total_relation_size of the job table counts the parent alone:
    the sum of its own files (heap, TOAST, indexes), not its day tables'."""
    total, own, days, rows, tables = monitor.execute(
        f"""
        WITH parent AS (SELECT '{HOT}'::regclass AS oid),
        own AS (
            SELECT oid FROM parent
            UNION ALL SELECT indexrelid FROM pg_index, parent
                WHERE indrelid = parent.oid
            UNION ALL SELECT reltoastrelid FROM pg_class, parent
                WHERE pg_class.oid = parent.oid AND reltoastrelid <> 0
            UNION ALL SELECT i.indexrelid FROM pg_index i, pg_class c, parent
                WHERE c.oid = parent.oid AND i.indrelid = c.reltoastrelid
        ),
        days AS (SELECT inhrelid AS oid FROM pg_inherits, parent
                 WHERE inhparent = parent.oid)
        SELECT pg_total_relation_size((SELECT oid FROM parent)),
            (SELECT sum(pg_relation_size(oid, fork)) FROM own,
                unnest(ARRAY['main', 'fsm', 'vm', 'init']) fork),
            (SELECT coalesce(sum(pg_total_relation_size(oid)), 0) FROM days),
            (SELECT count(*) FROM ONLY {HOT}),
            (SELECT count(*) FROM days)
        """
    ).fetchone()
    in_days = monitor.execute(f"SELECT count(*) FROM {HOT}").fetchone()[0] - rows
    verdict = "the parent alone" if total == own else "NOT the parent alone"
    return (
        f"pg_total_relation_size('{HOT}') = {total / MB:.2f} MB = its own heap,"
        f" TOAST and indexes ({own / MB:.2f} MB): {verdict}; its {tables} day"
        f" table(s), {days / MB:.2f} MB with {in_days:,} jobs, not counted"
        f" (the hot table holds {rows:,})"
    )


def summarize(
    monitor, samples: list[Sample], bounds: dict, released_at: float | None, options
) -> None:
    rows, rates = [], {}
    for phase in PHASES:
        mine = [s for s in samples if s.phase == phase]
        if not mine:
            continue
        rates[phase] = statistics.median(s.rate for s in mine)
        count, p50, p95 = monitor.execute(PHASE_LATENCY_SQL, bounds[phase]).fetchone()
        rows.append(
            [
                phase,
                len(mine),
                f"{rates[phase]:.1f}",
                f"{statistics.median(s.enqueued / s.seconds for s in mine):.1f}",
                f"{count:,}",
                "-" if p50 is None else f"{p50:.0f}",
                "-" if p95 is None else f"{p95:.0f}",
                f"{max(s.size for s in mine) / MB:.2f}",
                f"{max(s.heap for s in mine) / MB:.2f}",
                f"{max(s.dead for s in mine):,}",
            ]
        )
    minutes = ",".join(f"{m:g}" for m in options.minutes)
    print_table(
        f"By phase ({options.rate:g} jobs/s, --minutes {minutes}, runworker"
        f" --concurrency {options.concurrency} --jobs-per-child"
        f" {options.jobs_per_child})",
        [
            "phase",
            "samples",
            "median done/s",
            "median enq/s",
            "jobs started",
            "p50 ms",
            "p95 ms",
            "max hot MB",
            "max heap MB",
            "max dead",
        ],
        rows,
    )
    print()
    if "held" in rates and rates.get("baseline"):
        ratio = rates["held"] / rates["baseline"]
        verdict = "met" if ratio >= 0.90 else "NOT met"
        print(
            f"completion rate held/baseline: {rates['held']:.1f} /"
            f" {rates['baseline']:.1f} = {ratio:.3f} (target >= 0.90: {verdict})"
        )
    baseline = [s.size for s in samples if s.phase == "baseline"]
    after = [s for s in samples if s.phase == "after"]
    if baseline and after and released_at is not None:
        normal = statistics.median(baseline)
        limit = normal * NORMAL
        back = next((s for s in after if s.size <= limit), None)
        where = (
            f"back within 20% {back.at - released_at:.0f} s after the release"
            f" ({back.size / MB:.2f} MB)"
            if back
            else f"not within {options.minutes[2]:g} min (last:"
            f" {after[-1].size / MB:.2f} MB)"
        )
        print(
            f"hot table size: baseline median {normal / MB:.2f} MB (normal: <="
            f" {limit / MB:.2f} MB); {where}"
        )
        heaps = [s.heap for s in samples if s.phase == "baseline"]
        heap_limit = statistics.median(heaps) * NORMAL
        heap_back = next((s for s in after if s.heap <= heap_limit), None)
        print(
            f"  its heap alone: baseline median {statistics.median(heaps) / MB:.2f}"
            " MB; "
            + (
                f"back within 20% {heap_back.at - released_at:.0f} s after"
                if heap_back
                else f"not within {options.minutes[2]:g} min (last:"
                f" {after[-1].heap / MB:.2f} MB)"
            )
        )
    print(size_check(monitor))


# The run


def parse_minutes(text: str) -> list[float]:
    values = [float(part) for part in text.split(",")]
    if len(values) != 3 or any(value <= 0 for value in values):
        raise argparse.ArgumentTypeError("three positive numbers: baseline,held,after")
    return values


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100, help="jobs a second")
    parser.add_argument(
        "--minutes",
        type=parse_minutes,
        default=[10.0, 10.0, 5.0],
        help="the phases' lengths: baseline,held,after (default 10,10,5)",
    )
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--jobs-per-child", type=int, default=100)
    parser.add_argument(
        "--warmup",
        type=float,
        default=90,
        help="seconds of load before the baseline, not measured: at least one"
        " autovacuum_naptime, so that the baseline starts at the table's steady"
        " size (default 90)",
    )
    parser.add_argument(
        "--vacuum-every",
        default="auto",
        help="the bench's stand-in for autovacuum: every N s (0: never; auto:"
        " autovacuum_naptime if the server's autovacuum is off, else never)",
    )
    return parser.parse_args()


def vacuum_interval(monitor, choice: str) -> tuple[float, str]:
    """Seconds between the stand-in's looks (0: none), and a line saying so."""
    autovacuum, naptime = (
        monitor.execute(
            "SELECT setting FROM pg_settings WHERE name = %s", [name]
        ).fetchone()[0]
        for name in ("autovacuum", "autovacuum_naptime")
    )
    if choice == "auto":
        every = float(naptime) if autovacuum == "off" else 0.0
    else:
        every = float(choice)
    server = f"the server's autovacuum is {autovacuum} (naptime {naptime} s)"
    if every:
        return every, (
            f"{server}; the bench stands in for it: autovacuum's rules on the hot"
            f" table every {every:g} s"
        )
    return 0.0, f"{server}; no stand-in"


def run(options, monitor, worker: subprocess.Popen, log: Path, state: dict) -> None:
    wait_registered(monitor, worker, log)
    enqueuer = state["enqueuer"] = Enqueuer(options.rate)
    enqueuer.start()
    every, vacuum_line = vacuum_interval(monitor, options.vacuum_every)
    print(vacuum_line)
    if every:
        stand_in = state["vacuum"] = VacuumStandIn(every)
        stand_in.start()
    print(f"warm-up: {options.warmup:g} s of load, not measured", flush=True)
    time.sleep(options.warmup)
    print(HEADER, flush=True)
    samples: list[Sample] = []
    bounds: dict[str, tuple[datetime, datetime]] = {}
    released_at = None
    run_start = time.monotonic()
    for phase, minutes in zip(PHASES, options.minutes, strict=True):
        if phase == "held":
            held = state["held"] = HeldSnapshot()
            print(f"-- snapshot held (server pid {held.pid})", flush=True)
        elif phase == "after":
            state["held"].release()
            released_at = time.time()
            print("-- snapshot released (COMMIT)", flush=True)
        phase_start = time.monotonic()
        phase_end = phase_start + minutes * 60
        begin = interval_start = datetime.now(UTC)
        sent = enqueuer.sent
        next_at = phase_start
        while next_at < phase_end - 1e-6:
            next_at = min(next_at + SAMPLE, phase_end)
            time.sleep(max(0.0, next_at - time.monotonic()))
            interval_end = datetime.now(UTC)
            for thread in (enqueuer, state.get("vacuum")):
                if thread is not None and thread.error is not None:
                    raise RuntimeError(f"the {thread.name} failed") from thread.error
            if worker.poll() is not None:
                raise RuntimeError(f"the worker exited:\n{log_tail(log)}")
            one = sample(
                monitor,
                phase,
                time.monotonic() - run_start,
                interval_start,
                interval_end,
            )
            one.enqueued, sent = enqueuer.sent - sent, enqueuer.sent
            one.at = interval_end.timestamp()
            samples.append(one)
            print(one.line(), flush=True)
            if phase == "held" and (warning := check_held(monitor, state["held"])):
                print(f"   WARNING: {warning}", flush=True)
            interval_start = interval_end
        bounds[phase] = (begin, interval_start)
    enqueuer.stop()
    stand_in = state.get("vacuum")
    if stand_in is not None:
        runs = ", ".join(
            f"{what} at {at - run_start:.0f} s ({seconds:.1f} s)"
            for at, what, seconds in stand_in.runs
        )
        print(f"\nthe stand-in's runs (s as in the lines above): {runs or 'none'}")
    summarize(monitor, samples, bounds, released_at, options)
    done = monitor.execute(f"SELECT count(*) FROM {HOT} WHERE state = 'done'")
    print(f"jobs enqueued {enqueuer.sent:,}, done {done.fetchone()[0]:,}")


def main() -> None:
    options = parse_options()
    os.environ.setdefault("DATABASE_URL", DEFAULT_URL)
    setup_django()
    truncate_jobs()
    from django.db import connection

    connection.close()  # the enqueuer's thread has its own
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    state: dict = {}
    with (
        tempfile.TemporaryDirectory(prefix="vacuum-bench-") as logs,
        connect() as monitor,
    ):
        log = Path(logs) / "worker.log"
        with open(log, "wb") as out:
            worker = start_worker(options, out)
        try:
            run(options, monitor, worker, log, state)
        finally:
            if (held := state.get("held")) is not None:
                held.close()
            if (enqueuer := state.get("enqueuer")) is not None:
                enqueuer.stop()
            stop_worker(worker)
            if (stand_in := state.get("vacuum")) is not None:
                stand_in.stop()
        print(f"the worker's last line: {log_tail(log, 1)}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
