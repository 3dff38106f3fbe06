"""What telling a dead worker's row from a live one adds to a wake-up.

    python bench/wake_cost.py [--calls 3000] [--runs 3] [--workers 2,16]
        [--idle 0,300]

Runs a PostgreSQL instance of its own (bench/fleet.py's: fsync on), writes
--workers worker rows with room, each with a live session of its own that
took its listener's lock and named itself in its row (the listener's own
statement), and opens --idle more idle sessions. Then it calls
``django_jobs_wake('default', 'default', 1)`` --calls times, each in a
transaction of its own (as each enqueue is), with 0010's function (no look
at the session) and with 0011's (a try of the listener's advisory lock), and
prints the mean time per call in microseconds, the median of --runs; a
round trip from this process is in every figure. Each call NOTIFYs one
worker, as an enqueue does; nobody listens.

For comparison, the look-up that 0011 does not use: ``SELECT 1`` against
``SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(pid))``, each in its own
transaction. Reading the server's table of sessions copies it once per
transaction, which costs in proportion to the sessions.
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import time

from common import print_table, setup_django
from fleet import BenchPostgres

MIGRATION = "django_jobs.migrations.0011_worker_listener"
WAKE = "SELECT django_jobs_wake('default', 'default', 1)"
SELECT_ONE = "SELECT 1"
ACTIVITY = "SELECT EXISTS (SELECT 1 FROM pg_stat_get_activity(pg_backend_pid()))"


def open_sessions(instance: BenchPostgres, count: int) -> list:
    return [instance.connect() for _ in range(count)]


def write_workers(monitor, sessions: list) -> None:
    """One worker row with room per session, which takes its lock and names
    itself in the row with the listener's own statement."""
    from django_jobs.queue import channel
    from django_jobs.worker.listener import RECORD_SESSION

    monitor.execute("DELETE FROM django_jobs_worker")
    for number, session in enumerate(sessions):
        monitor.execute(
            "INSERT INTO django_jobs_worker (id, backend, hostname, pid, queues,"
            " concurrency, jobs_in_hand, room, started_at, last_heartbeat)"
            " VALUES (%s, 'default', 'bench', 1, '[]', 4, 0, 4, now(), now())",
            [f"bench-{number}"],
        )
        session.execute(RECORD_SESSION, {"channel": channel(f"bench-{number}")})
    named = monitor.execute(
        "SELECT count(*) FROM django_jobs_worker WHERE listener_pid IS NOT NULL"
    ).fetchone()[0]
    if named != len(sessions):
        raise RuntimeError("a session did not take its listener's lock")


def per_call(monitor, sql: str, calls: int) -> float:
    """Mean microseconds per statement, each its own transaction."""
    start = time.perf_counter()
    for _ in range(calls):
        monitor.execute(sql)
    return (time.perf_counter() - start) / calls * 1e6


def measure(monitor, sql: str, options) -> float:
    per_call(monitor, sql, calls=200)  # the plans cached, the pages warm
    return statistics.median(
        per_call(monitor, sql, options.calls) for _ in range(options.runs)
    )


def row_for(monitor, migration, workers: int, idle: int, options) -> list[str]:
    monitor.execute(migration.RESTORE)
    before = measure(monitor, WAKE, options)
    monitor.execute(migration.CREATE)
    now = measure(monitor, WAKE, options)
    one = measure(monitor, SELECT_ONE, options)
    activity = measure(monitor, ACTIVITY, options)
    return [
        str(workers),
        str(idle),
        f"{before:.0f}",
        f"{now:.0f}",
        f"{now - before:+.0f}",
        f"{activity - one:+.0f}",
    ]


def parse_options() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", default="2,16")
    parser.add_argument("--idle", default="0,300")
    return parser.parse_args()


def main() -> None:
    options = parse_options()
    print(f"load average before: {os.getloadavg()}, {os.cpu_count()} CPUs")
    with BenchPostgres("django_jobs_bench") as instance:
        instance.create()
        os.environ["DATABASE_URL"] = instance.url_for("postgres")
        setup_django()
        migration = importlib.import_module(MIGRATION)
        monitor = instance.connect()
        rows = []
        for idle_count in (int(n) for n in options.idle.split(",")):
            idle = open_sessions(instance, idle_count)
            for worker_count in (int(n) for n in options.workers.split(",")):
                sessions = open_sessions(instance, worker_count)
                write_workers(monitor, sessions)
                rows.append(
                    row_for(monitor, migration, worker_count, idle_count, options)
                )
                for session in sessions:
                    session.close()
            for session in idle:
                session.close()
        monitor.close()
    print_table(
        f"µs per call, each its own transaction ({options.calls} calls, median "
        f"of {options.runs} runs)",
        [
            "workers",
            "other sessions",
            "wake 0010",
            "wake 0011",
            "added",
            "pg_stat_activity look-up",
        ],
        rows,
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
