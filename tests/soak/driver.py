"""One soak, start to end: instance, workers, feed, chaos, settle, report.

The phases: create the private database (PostgreSQL, or MariaDB with
``--database mariadb``) and migrate it; start the workers;
for ``minutes``, feed jobs at a steady rate (the whole lot within the first
70% of the time, so that the chaos meets jobs of every kind) while the chaos
loop acts; then stop the chaos, resume stopped workers and let the workers
settle (every job done or buried) within a bounded time; take the snapshot
of unfinished jobs; stop the workers with SIGTERM; compute the figures from
the data. Whatever happens (an error, Ctrl-C, SIGTERM), every worker this
soak started is killed and the instance is stopped and removed.

Settling waits for the workflows too: no job waiting for others and no
workflow running. The rescuer (every RESCUE_INTERVAL) is the net that
releases a waiting job whose count a race left off and ends a workflow
whose last job's end was missed; settling gives it that time.
"""

from __future__ import annotations

import os
import random
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from . import kinds as soak_kinds
from .chaos import STOP_MARGIN, Chaos
from .instance import INSTANCES, Monitor, PrivateMariaDB, PrivatePostgres
from .timing import OPTIONS
from .workers import ROOT, SHUTDOWN_TIMEOUT, Workers

SOAK_TABLE = """
    CREATE TABLE soak_row (
        run text NOT NULL, event text NOT NULL, seq integer NOT NULL,
        job_id bigint NOT NULL, kind text NOT NULL, attempt integer NOT NULL,
        pid integer, pid_start bigint, ppid integer, ppid_start bigint,
        sup integer, sup_start bigint,
        at timestamptz NOT NULL DEFAULT clock_timestamp(),
        PRIMARY KEY (run, event, seq)
    )
"""
#: The same on MariaDB: keys of bounded length, a microsecond stamp of the
#: insert (CURRENT_TIMESTAMP(6) is the statement's time: each row is its own
#: autocommitted statement).
SOAK_TABLE_MYSQL = """
    CREATE TABLE soak_row (
        run varchar(64) NOT NULL, event varchar(16) NOT NULL, seq integer NOT NULL,
        job_id bigint NOT NULL, kind varchar(64) NOT NULL, attempt integer NOT NULL,
        pid integer, pid_start bigint, ppid integer, ppid_start bigint,
        sup integer, sup_start bigint,
        at timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
        PRIMARY KEY (run, event, seq)
    ) ENGINE=InnoDB
"""
COUNTS = "SELECT state, count(*) FROM django_jobs_job GROUP BY state"
RUNNING_WORKFLOWS = "SELECT count(*) FROM django_jobs_workflow WHERE state = 'running'"
#: A workflow's deadline, past the soak's chaos and settling: it must bound
#: each job (expires_at) and never end a workflow the soak still waits for.
DEADLINE_MARGIN = 120.0
FEED_SHARE = 0.7  # of the chaos time, during which the jobs are enqueued
#: Seconds the driver's statements wait for a row lock on MariaDB (below the
#: chaos's pauses of a worker, so that the loop goes on meanwhile).
DRIVER_LOCK_WAIT = 3


@dataclass
class Config:
    minutes: float = 2.0
    workers: int = 4
    concurrency: int = 2
    jobs: int = 3000
    seed: int = 1
    kinds: str | None = None
    chaos_interval: float = 1.2
    settle: float = 90.0
    chaos: bool = True
    run_dir: Path | None = None
    keep: bool = False
    #: Which private database the soak starts: "postgresql" or "mariadb".
    database: str = "postgresql"


class Feeder:
    """Enqueues the planned jobs at a steady rate, surviving database restarts."""

    def __init__(self, config: Config, rng: random.Random, seconds: float) -> None:
        chosen = soak_kinds.parse_kinds(config.kinds)
        names = rng.choices(
            [k.name for k in chosen], [k.weight for k in chosen], k=config.jobs
        )
        self.plan = [
            (key, name, arguments(name, key, rng)) for key, name in enumerate(names, 1)
        ]
        self.seconds = max(seconds, 0.001)
        self.deadline = timedelta(
            seconds=config.minutes * 60 + config.settle + DEADLINE_MARGIN
        )
        self.started = time.monotonic()
        self.sent = 0
        self.ids: list[int] = []
        self.failures = 0

    @property
    def finished(self) -> bool:
        return self.sent >= len(self.plan)

    def tick(self) -> None:
        elapsed = time.monotonic() - self.started
        due = min(len(self.plan), int(len(self.plan) * elapsed / self.seconds) + 1)
        if due > self.sent:
            self.enqueue(self.plan[self.sent : due])

    def enqueue(self, batch: list) -> None:
        from django.db import DatabaseError, connection

        from . import flows, tasks

        by_kind: dict[str, list] = {}
        for _, name, args in batch:
            by_kind.setdefault(name, []).append((args, {}))
        try:
            for name, calls in by_kind.items():
                if name == soak_kinds.WORKFLOW.name:
                    for args, _ in calls:
                        self.ids += flows.enqueue_graph(*args, deadline=self.deadline)
                    continue
                results = getattr(tasks, name).enqueue_many(calls)
                self.ids += [int(result.id) for result in results]
        except DatabaseError:
            # A batch whose commit is in doubt is sent again: a few extra jobs
            # do no harm, since the report counts the rows it finds.
            self.failures += 1
            connection.close()
            return
        self.sent += len(batch)


def arguments(kind: str, key: int, rng: random.Random) -> list:
    """A job's arguments: its key, and how long it runs if it is a sleeper."""
    if kind == "nap":
        return [key, round(rng.uniform(0.02, 0.3), 3)]
    if kind == "lane":  # long enough that many are in flight when chaos hits
        return [key, round(rng.uniform(0.5, 2.0), 3)]
    if kind == "touch":
        return [key, round(rng.uniform(*soak_kinds.TOUCH_SECONDS), 2)]
    if kind == "keyed":
        group = f"g{key % soak_kinds.KEYS}"
        return [key, group, round(rng.uniform(0.02, 0.3), 3)]
    if kind == soak_kinds.WORKFLOW.name:
        return [key, soak_kinds.graph_shape(rng)]
    return [key]


def prepare_django(instance: PrivatePostgres | PrivateMariaDB) -> None:
    """Configure Django on the instance, migrate it, create the soak table."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.soak.settings"
    os.environ["DATABASE_URL"] = instance.url
    sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    with instance.connect() as connection:
        connection.execute(
            SOAK_TABLE_MYSQL if instance.vendor == "mysql" else SOAK_TABLE
        )
    if instance.vendor == "mysql":
        from django.db import connection as django_connection

        # The chaos loop shares this process's one thread with the enqueues:
        # an enqueue waiting (50 s by default) for a row that a worker the
        # chaos paused holds would keep the loop from resuming that worker.
        # It gives up sooner, and the feeder sends the batch again.
        options = django_connection.settings_dict.setdefault("OPTIONS", {})
        options["init_command"] = (
            f"SET SESSION innodb_lock_wait_timeout = {DRIVER_LOCK_WAIT}"
        )
        django_connection.close()


def counts(monitor: Monitor) -> dict[str, int] | None:
    rows = monitor.query(COUNTS)
    return None if rows is None else dict(rows)


def settled(monitor: Monitor) -> bool:
    """Every job ended (none ready, reserved or waiting), no workflow running."""
    state = counts(monitor)
    if state is None or any(state.get(s) for s in ("ready", "reserved", "waiting")):
        return False
    running = monitor.query(RUNNING_WORKFLOWS)
    return running is not None and running[0][0] == 0


class Soak:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.run_dir = config.run_dir or Path(
            tempfile.mkdtemp(prefix="django-jobs-soak-")
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.t0 = time.time()
        self.settled_in: float | None = None
        self.unfinished: list[tuple] = []

    def say(self, text: str) -> None:
        print(f"[soak t+{time.time() - self.t0:6.1f}s] {text}", flush=True)

    def run(self) -> int:
        """The whole soak; returns the exit status (0: every gated figure is 0)."""
        from .report import build_report

        previous = signal.signal(signal.SIGTERM, _interrupt)
        try:
            with INSTANCES[self.config.database]() as instance:
                self.say(f"{instance.name} {instance.url} in {instance.root}")
                instance.create()
                prepare_django(instance)
                self.monitor = Monitor(instance)
                workers = Workers(
                    self.config.workers,
                    self.config.concurrency,
                    instance.url,
                    self.run_dir,
                )
                chaos = Chaos(
                    workers,
                    instance,
                    self.rng,
                    self.run_dir / "chaos.jsonl",
                    self.config.chaos_interval,
                )
                try:
                    feeder = self.drive(workers, chaos)
                finally:
                    workers.kill_all()
                report = build_report(self, instance, workers, chaos, feeder)
                self.monitor.close()
                chaos.monitor.close()
        finally:
            signal.signal(signal.SIGTERM, previous)
        print(report.text, flush=True)
        (self.run_dir / "report.txt").write_text(report.text)
        print(f"logs, chaos events and this report: {self.run_dir}", flush=True)
        return 0 if report.passed else 1

    def drive(self, workers: Workers, chaos: Chaos) -> Feeder:
        seconds = self.config.minutes * 60
        workers.start_all()
        self.t0 = time.time()
        feeder = Feeder(self.config, self.rng, seconds * FEED_SHARE)
        self.say(
            f"{self.config.workers} workers, {self.config.jobs} jobs, "
            f"{self.config.minutes:g} min of chaos, seed {self.config.seed}"
        )
        end = self.t0 + seconds
        next_note = 0.0
        while (now := time.time()) < end or not feeder.finished:
            workers.poll(now)
            if not feeder.finished:
                feeder.tick()
            if self.config.chaos:
                chaos.tick(now)
            next_note = self.progress(now, next_note, workers, chaos, feeder)
            time.sleep(0.05)
        chaos.resume_all()
        self.settle(workers, chaos, feeder)
        workers.terminate_all(SHUTDOWN_TIMEOUT + OPTIONS["KILL_GRACE"] + STOP_MARGIN)
        return feeder

    def settle(self, workers: Workers, chaos: Chaos, feeder: Feeder) -> None:
        """Keep the workers going until every job is done or buried and every
        workflow has ended, or time is up."""
        self.say("chaos over; settling")
        start = time.time()
        next_note = 0.0
        while time.time() < start + self.config.settle:
            now = time.time()
            workers.poll(now)
            chaos.tick_stops(now)
            if settled(self.monitor):
                self.settled_in = time.time() - start
                break
            next_note = self.progress(now, next_note, workers, chaos, feeder)
            time.sleep(0.2)
        self.unfinished = (
            self.monitor.query(
                "SELECT id, state, reserved_by, reserved_until, run_at, attempts "
                "FROM django_jobs_job WHERE state NOT IN ('done', 'buried') ORDER BY id"
            )
            or []
        )
        if self.settled_in is not None:
            self.say(f"settled in {self.settled_in:.1f}s")
        else:
            left = len(self.unfinished)
            self.say(f"NOT settled after {self.config.settle:g}s: {left} job(s) left")

    def progress(self, now, next_note, workers, chaos, feeder) -> float:
        if now < next_note:
            return next_note
        state = counts(self.monitor)
        exits = sum(1 for i in workers.incarnations() if i.ended is not None)
        jobs = "database down"
        if state is not None:
            names = ("waiting", "ready", "reserved", "done", "buried")
            jobs = "  ".join(f"{name} {state.get(name, 0)}" for name in names)
        self.say(
            f"enqueued {feeder.sent}/{len(feeder.plan)}  {jobs}  "
            f"| chaos {len(chaos.events)}  worker exits {exits}"
        )
        return now + 10


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")
