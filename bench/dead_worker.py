"""A worker SIGKILLed under a steady load: how long its survivor's jobs wait.

    python bench/dead_worker.py [--rate 100] [--before 30] [--after 75]
        [--workers 2] [--concurrency 4] [--jobs-per-child 1] [--kill other]

Runs a PostgreSQL instance of its own (bench/fleet.py's: fsync on), starts
--workers workers, and enqueues no-op jobs at --rate a second, one
transaction each, from this process. After --before seconds it SIGKILLs every
process of one worker (--kill other: one that does not hold the fleet's
lease; leader: the one that does) and goes on enqueuing for --after seconds.

A job's wait is started_at - enqueued_at (started_at is its claim's time).
Printed: the survivors' waits for the jobs enqueued before the kill and
after it (p50, p99, max), then after it by windows of 10 s, so that one sees
how long a dead worker's row kept taking wake-ups. The jobs the dead worker
held when it died wait for the rescuer and are left out. The bench also
LISTENs on the dead worker's channel from the kill on and counts the
wake-ups sent to it in each window: a figure the machine's load does not
blur, as it does the latencies. It also says when the server ended the dead
worker's LISTEN session (the one its row names, ``listener_pid``): from then
on wake-ups pass it over (migration 0011); before, only the live workers'
heartbeats, two of them after its last, took its room.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import ROOT, print_table, setup_django
from fleet import FLEET_ROLE, BenchPostgres, Monitor, percentile, processes_in

WINDOW = 10.0


def start_workers(url: str, logs: Path, options) -> list[subprocess.Popen]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": url,
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "manage.py", "runworker"]
    command += ["--concurrency", str(options.concurrency)]
    command += ["--jobs-per-child", str(options.jobs_per_child)]
    workers = []
    for number in range(options.workers):
        with open(logs / f"worker-{number}.log", "wb") as log:
            workers.append(
                subprocess.Popen(
                    command,
                    cwd=ROOT,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
    return workers


def kill_session(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and everything it forked (its session)."""
    for pid in processes_in({str(worker.pid)}):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    worker.wait(timeout=10)


def stop(workers: list[subprocess.Popen]) -> None:
    for worker in workers:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
    for worker in workers:
        with contextlib.suppress(subprocess.TimeoutExpired):
            worker.wait(timeout=30)
        kill_session(worker)


def wait_registered(monitor: Monitor, count: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while monitor.one("SELECT count(*) FROM django_jobs_worker") < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the workers did not all start in {timeout} s")
        time.sleep(0.2)


def victim(monitor: Monitor, workers: list[subprocess.Popen], which: str):
    """The worker to kill: the lease's holder, or one that does not hold it."""
    leader_pid = monitor.one(
        "SELECT w.pid FROM django_jobs_worker w JOIN django_jobs_lease l"
        " ON l.holder = w.id"
    )
    for worker in workers:
        if (worker.pid == leader_pid) == (which == "leader"):
            return worker
    raise RuntimeError("no worker to kill")


class DeadEars:
    """LISTENs on a worker's channel and notes when each wake-up came."""

    def __init__(self, instance: BenchPostgres, worker_id: str) -> None:
        from django_jobs.queue import channel

        self.connection = instance.connect()
        self.connection.execute(f"LISTEN {channel(worker_id)}")
        self.times: list[float] = []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.listen, daemon=True)
        self.thread.start()

    def listen(self) -> None:
        while not self.done.is_set():
            for _ in self.connection.notifies(timeout=0.2):
                self.times.append(time.time())

    def close(self) -> list[float]:
        self.done.set()
        self.thread.join(timeout=10)
        self.connection.close()
        return self.times


class SessionWatch:
    """Notes when the server ends a session (the dead worker's listener's)."""

    def __init__(self, instance: BenchPostgres, pid: int | None) -> None:
        self.connection = instance.connect()
        self.pid = pid
        self.ended_at: float | None = None
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self) -> None:
        deadline = time.monotonic() + 60
        while self.pid is not None and time.monotonic() < deadline:
            gone = not self.connection.execute(
                "SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(%s))", [self.pid]
            ).fetchone()[0]
            if gone:
                self.ended_at = time.time()
                return
            time.sleep(0.005)

    def close(self, killed_at: float) -> str:
        self.thread.join(timeout=70)
        self.connection.close()
        if self.pid is None:
            return "the dead worker's row named no LISTEN session"
        if self.ended_at is None:
            return f"its LISTEN session (server pid {self.pid}) did not end in 60 s"
        after = (self.ended_at - killed_at) * 1000
        return (
            f"its LISTEN session (server pid {self.pid}) ended {after:.0f} ms"
            " after the SIGKILL"
        )


def enqueue_for(seconds: float, rate: float) -> list[int]:
    """Enqueue no-op jobs at ``rate`` a second for ``seconds``; their ids."""
    from bench.tasks import noop

    ids, start = [], time.monotonic()
    count = int(seconds * rate)
    for number in range(count):
        delay = start + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        ids.append(int(noop.enqueue().id))
    return ids


def waits(monitor: Monitor, ids: list[int], dead_id: str) -> list[tuple[float, float]]:
    """(enqueued_at in epoch seconds, wait in ms) of the jobs the dead worker
    did not hold; each once it is done (bounded wait)."""
    deadline = time.monotonic() + 120
    query = (
        "SELECT count(*) FROM django_jobs_job WHERE id = ANY(%s)"
        " AND state <> 'done' AND NOT worker_ids ? %s"
    )
    while monitor.one(query, [ids, dead_id]):
        if time.monotonic() > deadline:
            raise RuntimeError("the survivors' jobs did not all finish in 120 s")
        time.sleep(0.5)
    rows = monitor.connection.execute(
        "SELECT extract(epoch FROM enqueued_at)::float8,"
        " extract(epoch FROM started_at - enqueued_at)::float8 * 1000"
        " FROM django_jobs_job WHERE id = ANY(%s) AND NOT worker_ids ? %s",
        [ids, dead_id],
    ).fetchall()
    return [(enqueued, wait) for enqueued, wait in rows]


def row(label: str, values: list[float], woken: int | str = "") -> list[str]:
    if not values:
        return [label, "0", "-", "-", "-", str(woken)]
    return [
        label,
        str(len(values)),
        f"{percentile(values, 0.5):.1f}",
        f"{percentile(values, 0.99):.1f}",
        f"{max(values):.1f}",
        str(woken),
    ]


def report(
    before: list, after: list, killed_at: float, dead: list, session: str, options
):
    waits_before = [wait for _, wait in before]
    waits_after = [wait for _, wait in after]
    rows = [
        row(f"before the kill ({options.before:.0f} s)", waits_before),
        row(f"after the kill ({options.after:.0f} s)", waits_after, len(dead)),
    ]
    start = 0.0
    while start < options.after:
        inside = [w for t, w in after if start <= t - killed_at < start + WINDOW]
        woken = sum(start <= t - killed_at < start + WINDOW for t in dead)
        rows.append(row(f"  {start:.0f}-{start + WINDOW:.0f} s after", inside, woken))
        start += WINDOW
    print_table(
        f"Enqueue to start on the survivors, ms ({options.rate:.0f} jobs/s, "
        f"{options.workers} workers of --concurrency {options.concurrency} "
        f"--jobs-per-child {options.jobs_per_child}, the {options.kill} killed)",
        ["jobs enqueued", "jobs", "p50", "p99", "max", "wake-ups to the dead"],
        rows,
    )
    print(f"  {session}")
    if dead:
        last = dead[-1] - killed_at
        print(f"  the last wake-up to the dead worker: {last:.1f} s after the kill")


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--before", type=float, default=30)
    parser.add_argument("--after", type=float, default=75)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--jobs-per-child", type=int, default=1)
    parser.add_argument("--kill", choices=["other", "leader"], default="other")
    return parser.parse_args()


def main() -> None:
    options = parse_options()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    with (
        BenchPostgres("django_jobs_bench") as instance,
        tempfile.TemporaryDirectory(prefix="dead-worker-bench-") as logs,
    ):
        instance.create()
        os.environ["DATABASE_URL"] = instance.url_for("postgres")
        setup_django()
        import django_jobs

        monitor = Monitor(instance)
        print(f"django_jobs from {Path(django_jobs.__file__).parent}")
        workers = start_workers(instance.url_for(FLEET_ROLE), Path(logs), options)
        try:
            wait_registered(monitor, options.workers)
            time.sleep(5)  # spare children forked, the lease taken
            before = enqueue_for(options.before, options.rate)
            dead = victim(monitor, workers, options.kill)
            dead_id, listener_pid = monitor.connection.execute(
                "SELECT id, listener_pid FROM django_jobs_worker WHERE pid = %s",
                [dead.pid],
            ).fetchone()
            ears = DeadEars(instance, dead_id)
            session = SessionWatch(instance, listener_pid)
            killed_at = time.time()
            kill_session(dead)
            after = enqueue_for(options.after, options.rate)
            report(
                waits(monitor, before, dead_id),
                waits(monitor, after, dead_id),
                killed_at,
                ears.close(),
                session.close(killed_at),
                options,
            )
        finally:
            stop(workers)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
