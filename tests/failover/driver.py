"""One failover run, start to end: pair, jobs, workers, switch, settle, evidence.

The phases: start a primary and its standby (synchronous or asynchronous
replication) and migrate through the multi-host URL; enqueue the planned jobs;
start the workers; keep enqueuing a trickle of jobs; once a third of the
planned jobs are done, hold the replication link a few seconds (the standby
falls behind), stop the primary at once and promote the standby; go on
enqueuing for a few seconds; wait (bounded) until every job has ended;
wait for each worker to LISTEN again; stop the workers with SIGTERM; collect
the evidence (rows, marker files, logs) for ``evidence.py``. Whatever
happens, every worker this run started is killed by its pid and both servers
are stopped and removed.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psycopg

from .pair import Pair

ROOT = Path(__file__).resolve().parents[2]
#: The trickle's keys start here (the planned jobs' keys are 1..jobs).
TRICKLE_KEYS = 100_000
#: What libpq is told: both servers, keep the one that takes writes, and give
#: up on one that does not answer within 2 s (libpq would wait for ever).
URL_OPTIONS = {"target_session_attrs": "read-write", "connect_timeout": "2"}


@dataclass
class Config:
    synchronous: bool = True
    jobs: int = 300
    workers: int = 2
    concurrency: int = 4
    #: Seconds the replication link is held before the primary stops.
    hold: float = 3.0
    #: Hold only the standby's replies (commits in doubt), not the WAL.
    acks_only: bool = False
    #: Seconds between the primary's stop and the standby's promotion.
    gap: float = 1.0
    #: Leave ``target_session_attrs`` out: the workers may connect to the
    #: standby while it is read-only (a mistake the docs warn about).
    any_host: bool = False
    #: Seconds of enqueuing after the promotion.
    trickle_after: float = 5.0
    #: Seconds the workers get to end every job after the switch.
    settle: float = 150.0
    run_dir: Path = field(default_factory=lambda: Path("/tmp"))


def plan(jobs: int) -> list[tuple[str, int]]:
    """(kind, key) of each planned job: mostly quick, a quarter naps, some
    flaky ones and one buried on purpose per hundred."""
    kinds = []
    for key in range(1, jobs + 1):
        if key % 100 == 50:
            kinds.append(("doomed", key))
        elif key % 7 == 3:
            kinds.append(("flaky", key))
        elif key % 4 == 1:
            kinds.append(("nap", key))
        else:
            kinds.append(("quick", key))
    return kinds


def _die_with_parent() -> None:
    """In a worker, before exec: die if the driver dies (no orphan workers)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


class Workers:
    """``manage.py runworker`` processes, each in a session of its own."""

    def __init__(self, config: Config, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.processes: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.codes: list[int | None] = []

    def start(self) -> None:
        for number in range(self.config.workers):
            log = self.config.run_dir / f"worker-{number}.log"
            with open(log, "wb") as output:
                self.processes.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            str(ROOT / "manage.py"),
                            "runworker",
                            "--concurrency",
                            str(self.config.concurrency),
                        ],
                        cwd=ROOT,
                        env=self.env,
                        stdin=subprocess.DEVNULL,
                        stdout=output,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=_die_with_parent,
                    )
                )
            self.logs.append(log)

    def running(self) -> int:
        return sum(process.poll() is None for process in self.processes)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM each (a graceful drain), then SIGKILL any left, by pid."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        self.codes = [process.poll() for process in self.processes]
        self.kill()

    def kill(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


class Watch:
    """The driver's own look at whichever server takes writes, reopened as needed."""

    def __init__(self, pair: Pair) -> None:
        hosts = ",".join("127.0.0.1" for _ in pair.ports)
        ports = ",".join(str(port) for port in pair.ports)
        self.conninfo = (
            f"host={hosts} port={ports} user=postgres dbname={pair.primary.dbname} "
            "target_session_attrs=read-write connect_timeout=2 "
            "application_name=failover-driver"
        )
        self.connection: psycopg.Connection | None = None

    def query(self, sql: str, params: tuple = ()) -> list[tuple] | None:
        try:
            if self.connection is None or self.connection.closed:
                self.connection = psycopg.connect(self.conninfo, autocommit=True)
            return self.connection.execute(sql, params).fetchall()
        except psycopg.Error:
            self.close()
            return None

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):
                self.connection.close()
            self.connection = None


class Trickle(threading.Thread):
    """Enqueues a quick job every ``interval`` s until told to stop, through
    Django (the multi-host URL), as a web process would: an enqueue that
    fails is not retried (its commit may have landed: that row is "in doubt")."""

    def __init__(self, interval: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.halt = threading.Event()
        self.acked: dict[int, dict] = {}  # by key
        self.failed: list[dict] = []

    def run(self) -> None:
        from django.db import DatabaseError, connection

        from . import tasks

        key = TRICKLE_KEYS
        while not self.halt.wait(self.interval):
            key += 1
            try:
                result = tasks.quick.enqueue(key)
            except DatabaseError as exc:
                self.failed.append({"key": key, "at": time.time(), "error": str(exc)})
                connection.close()
                continue
            self.acked[key] = {"id": int(result.id), "kind": "quick", "at": time.time()}
        connection.close()


def wait_until(condition, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def prepare_django(pair: Pair, any_host: bool) -> None:
    options = dict(URL_OPTIONS)
    if any_host:
        del options["target_session_attrs"]
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.failover.settings"
    os.environ["DATABASE_URL"] = pair.url(**options)
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def enqueue_plan(jobs: int) -> dict[int, dict]:
    """Enqueue the planned jobs (each kind in one statement); acked, by key."""
    from . import tasks

    acked: dict[int, dict] = {}
    by_kind: dict[str, list[int]] = {}
    for kind, key in plan(jobs):
        by_kind.setdefault(kind, []).append(key)
    for kind, keys in by_kind.items():
        results = getattr(tasks, kind).enqueue_many([([key], {}) for key in keys])
        now = time.time()
        acked.update(
            {
                key: {"id": int(result.id), "kind": kind, "at": now}
                for key, result in zip(keys, results, strict=True)
            }
        )
    return acked


COUNT_DONE = "SELECT count(*) FROM django_jobs_job WHERE state IN ('done', 'buried')"
COUNT_OPEN = "SELECT count(*) FROM django_jobs_job WHERE state IN ('ready', 'reserved')"
# A listener's session holds its advisory lock (LISTENER_LOCK, its pid) once
# it has LISTENed and recorded itself (django_jobs/worker/listener.py). The
# driver runs without Django: the key is repeated here, and test_evidence
# checks it against django_jobs.queue.wake's.
LISTENER_LOCK = 0x646A6F62
LISTENING = (
    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
    f"AND classid = {LISTENER_LOCK} AND objsubid = 2 AND objid = pid"
)
ROWS = (
    "SELECT id, task_path, state, attempts, args, "
    "extract(epoch FROM finished_at)::float8 FROM django_jobs_job"
)


def count(watch: Watch, sql: str) -> int | None:
    rows = watch.query(sql)
    return None if rows is None else rows[0][0]


def run(config: Config) -> dict:
    """One run; the evidence, as JSON-able data (see evidence.analyse)."""
    marks = config.run_dir / "marks"
    marks.mkdir(parents=True, exist_ok=True)
    evidence: dict = {"config": {**asdict(config), "run_dir": str(config.run_dir)}}
    with Pair() as pair:
        pair.create(synchronous=config.synchronous)
        prepare_django(pair, config.any_host)
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "FAILOVER_MARKS": str(marks),
        }
        workers = Workers(config, env)
        watch = Watch(pair)
        trickle = Trickle()
        try:
            evidence.update(drive(config, pair, workers, watch, trickle))
        finally:
            trickle.halt.set()
            workers.kill()
            watch.close()
            pair.keep_logs(config.run_dir)
    evidence["acked"].update(trickle.acked)
    evidence["enqueue_failures"] = trickle.failed
    evidence["worker_logs"] = [str(log) for log in workers.logs]
    evidence["worker_codes"] = workers.codes
    evidence["marks"] = sorted(path.name for path in marks.iterdir())
    (config.run_dir / "evidence.json").write_text(json.dumps(evidence, indent=1))
    return evidence


def drive(
    config: Config, pair: Pair, workers: Workers, watch: Watch, trickle: Trickle
) -> dict:
    acked = enqueue_plan(config.jobs)
    workers.start()
    trickle.start()
    third = config.jobs // 3
    progressed = wait_until(lambda: (count(watch, COUNT_DONE) or 0) >= third, 120)
    switch = pair.fail_over(config.hold, config.gap, config.acks_only)
    time.sleep(config.trickle_after)
    trickle.halt.set()
    trickle.join(10)
    settled_at = None
    if wait_until(lambda: count(watch, COUNT_OPEN) == 0, config.settle):
        settled_at = time.time()
    listening = wait_until(
        lambda: count(watch, LISTENING) == config.workers, 30
    )  # fmt: skip
    running_at_end = workers.running()
    workers.stop()
    rows = watch.query(ROWS) or []
    return {
        "acked": acked,
        "progressed": progressed,
        **switch,
        "settled_at": settled_at,
        "listening_again": listening,
        "running_at_end": running_at_end,
        "rows": [list(row) for row in rows],
    }
