"""What an idle worker costs the database, and how soon it starts a new job.

    python bench/idle_statements.py [--seconds 30] [--jobs 10] [--gap 3]

For PostgreSQL and MariaDB in the same run, each in a process of its own:
starts one ``runworker --concurrency 2`` on an empty database of its own,
lets it settle, then counts what the server did for it over ``--seconds``:

- PostgreSQL: transactions (``pg_stat_database.xact_commit + xact_rollback``
  of the bench's own database, read from another database). Each statement
  of an idle worker runs in autocommit, so it is its own transaction;
  pg_stat_statements is not loaded on these servers.
- MariaDB: statements (``information_schema.USER_STATISTICS``: SELECT,
  UPDATE and other commands, COMMIT and ``SET autocommit`` among them) of a
  user only the worker uses; ``userstat`` is switched on for the run and
  back off after it.

Then the enqueue-to-start latency: ``--jobs`` jobs one at a time, ``--gap``
seconds apart (so the worker is idle, its poll backed off, before each), and
as many ``--flow-gap`` seconds apart (jobs flowing). From just before
``Task.enqueue()`` to the job's code starting in its child (it sends its
clock over UDP). PostgreSQL wakes the worker by NOTIFY; MariaDB's worker
polls, every 50 ms right after it found jobs, backing off to
``--poll-interval`` (1 s by default) when none come.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgres://postgres@127.0.0.1:5432/django_jobs_bench_idle"
MARIADB = "mysql://root@127.0.0.1:3306/django_jobs_bench_idle"
#: The MariaDB user only the measured worker uses (its statements alone).
WORKER_USER = "djobs_idle"


def parse_options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--gap", type=float, default=3.0)
    parser.add_argument("--flow-gap", type=float, default=0.1)
    parser.add_argument("--postgres", default=POSTGRES)
    parser.add_argument("--mariadb", default=MARIADB)
    parser.add_argument(
        "--one", choices=["postgresql", "mysql"], help=argparse.SUPPRESS
    )
    return parser.parse_args(argv)


def main() -> None:
    options = parse_options()
    if options.one:
        print(json.dumps(measure_one(options)))
        return
    rows = []
    for vendor, url in [("postgresql", options.postgres), ("mysql", options.mariadb)]:
        command = [sys.executable, __file__, "--one", vendor, *sys.argv[1:]]
        env = {**os.environ, "DATABASE_URL": url}
        done = subprocess.run(
            command, env=env, capture_output=True, text=True, timeout=600
        )
        if done.returncode:
            sys.exit(f"{vendor}: {done.stderr[-3000:]}")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    sys.path.insert(0, str(ROOT / "bench"))
    from common import print_table

    print_table(
        f"One idle worker (runworker --concurrency 2) over {options.seconds:g} s; "
        f"latency of {options.jobs} jobs one at a time",
        [
            "database",
            "wake-up",
            "counted",
            "per s",
            f"idle p50 ms (gap {options.gap:g} s)",
            "idle max ms",
            f"flowing p50 ms (gap {options.flow_gap:g} s)",
        ],
        [
            [
                row["database"],
                row["wakeup"],
                row["counted"],
                f"{row['per_second']:.2f}",
                f"{statistics.median(row['idle']):.0f}",
                f"{max(row['idle']):.0f}",
                f"{statistics.median(row['flowing']):.0f}",
            ]
            for row in rows
        ],
    )


# One database, in its own process


def measure_one(options: argparse.Namespace) -> dict:
    vendor = options.one
    sys.path.insert(0, str(ROOT))
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
    if vendor == "mysql":
        worker_url = prepare_mariadb()
    else:
        worker_url = os.environ["DATABASE_URL"]
        create_postgres_database()
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    empty_tables()
    counter = PostgresCounter() if vendor == "postgresql" else MariaDBCounter()
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.settimeout(15)
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": worker_url,
    }
    command = [sys.executable, "manage.py", "runworker", "--concurrency", "2"]
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
    try:
        wait_for_worker()
        time.sleep(5)  # its start, first duties and poll backoff are not idling
        before = counter.read()
        time.sleep(options.seconds)
        counted = counter.read() - before
        idle = latencies(receiver, options.jobs, options.gap)
        flowing = latencies(receiver, options.jobs, options.flow_gap)
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        receiver.close()
        counter.close()
        empty_tables()
    return {
        "database": "PostgreSQL" if vendor == "postgresql" else "MariaDB",
        "wakeup": "LISTEN/NOTIFY" if vendor == "postgresql" else "polling",
        "counted": counter.what,
        "per_second": counted / options.seconds,
        "idle": idle,
        "flowing": flowing,
    }


def latencies(receiver: socket.socket, jobs: int, gap: float) -> list[float]:
    from bench import tasks

    port = receiver.getsockname()[1]
    measured = []
    for _ in range(jobs):
        time.sleep(gap)
        before = time.time()
        tasks.report_start.enqueue(port)
        started = float(receiver.recv(64))
        measured.append((started - before) * 1000)
    return measured


def wait_for_worker(timeout: float = 60) -> None:
    from django_jobs.models import Worker

    deadline = time.monotonic() + timeout
    while not Worker.objects.exists():
        if time.monotonic() > deadline:
            raise TimeoutError("the worker did not start")
        time.sleep(0.2)


def empty_tables() -> None:
    from django_jobs.models import Job, Worker

    Job.objects.all().delete()
    Worker.objects.all().delete()


def create_postgres_database() -> None:
    import psycopg

    name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
    admin_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if not admin.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [name]
        ).fetchone():
            admin.execute(f'CREATE DATABASE "{name}"')


def mariadb_admin():
    from urllib.parse import urlsplit

    import MySQLdb

    url = urlsplit(os.environ["DATABASE_URL"])
    admin = MySQLdb.connect(
        host=url.hostname, port=url.port or 3306, user=url.username or "root",
        passwd=url.password or "", autocommit=True,
    )  # fmt: skip
    return admin, url.path.lstrip("/")


def prepare_mariadb() -> str:
    """The database, and the worker's own user on it; the worker's URL."""
    admin, name = mariadb_admin()
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4")
        for host in ("127.0.0.1", "localhost"):
            cursor.execute(f"CREATE USER IF NOT EXISTS '{WORKER_USER}'@'{host}'")
            cursor.execute(f"GRANT ALL ON `{name}`.* TO '{WORKER_USER}'@'{host}'")
    admin.close()
    base = os.environ["DATABASE_URL"].split("://", 1)[1].split("@", 1)[1]
    return f"mysql://{WORKER_USER}@{base}"


class PostgresCounter:
    what = "transactions"

    def __init__(self) -> None:
        import psycopg

        self.name = os.environ["DATABASE_URL"].rsplit("/", 1)[1]
        admin_url = os.environ["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
        self.connection = psycopg.connect(admin_url, autocommit=True)

    def read(self) -> int:
        # The statistics of other sessions reach the view within a second.
        time.sleep(1.5)
        self.connection.execute("SELECT pg_stat_clear_snapshot()")
        (count,) = self.connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = %s",
            [self.name],
        ).fetchone()
        return count

    def close(self) -> None:
        self.connection.close()


class MariaDBCounter:
    what = "statements"

    def __init__(self) -> None:
        self.connection, _ = mariadb_admin()
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT @@GLOBAL.userstat")
            self.was_on = bool(cursor.fetchone()[0])
            cursor.execute("SET GLOBAL userstat = 1")

    def read(self) -> int:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(SUM(SELECT_COMMANDS + UPDATE_COMMANDS"
                " + OTHER_COMMANDS), 0) FROM information_schema.USER_STATISTICS"
                " WHERE USER = %s",
                [WORKER_USER],
            )
            return int(cursor.fetchone()[0])

    def close(self) -> None:
        if not self.was_on:
            with self.connection.cursor() as cursor:
                cursor.execute("SET GLOBAL userstat = 0")
        self.connection.close()


if __name__ == "__main__":
    main()
