"""procrastinate (PostgreSQL, asyncio worker).

Worker: one asyncio process; --concurrency N coroutine slots (default 1).
Sync task functions run in a thread (asgiref sync_to_async). Claim/finish go
through SQL functions (procrastinate_fetch_job / procrastinate_finish_job,
SELECT ... FOR UPDATE SKIP LOCKED inside). Idle workers wake on LISTEN/NOTIFY,
with --fetch-job-polling-interval (default 5 s) as a safety-net poll.
No per-job process mode.

W2-async: an `async def` task awaiting common.async_io (100 ms), which the
worker runs as a coroutine on its own event loop (no thread): c2x100 = 2
worker processes with --concurrency 100 each (200 jobs at once, as
django_jobs' lane at --concurrency 2, K=100), and (secondary) c200 = 1
process with --concurrency 200.

W2-orm: procrastinate's Django integration (procrastinate.contrib.django).
The variant's environment sets Django up with that app installed
(CONN_MAX_AGE=600, default database bench_procrastinate, whose schema
`schema --apply` made; the integration needs no migrate to run); the worker
is `python -m django procrastinate worker`, which uses a psycopg connector
built from the Django database settings for claims and runs the sync ORM
task in a thread, around which the integration's middleware calls
close_old_connections() (so the thread's connection is kept). The task is
registered on procrastinate.contrib.django.app (PROCRASTINATE_IMPORT_PATHS
names this module) and deferred through it, i.e. through Django's connection.
"""

from __future__ import annotations

import os
import subprocess
import sys

import procrastinate

from .. import common
from ..base import Adapter as BaseAdapter
from ..base import Variant, django_ready

APP_PATH = "harness.adapters.peer_procrastinate.app"

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=os.environ.get("BENCH_PG_DSN", common.pg_dsn("bench_procrastinate"))
    )
)


@app.task(name="noop", queue="default")
def noop():
    return 1


@app.task(name="async_io", queue="default")
async def async_io():  # W2-async: 100 ms awaited on the worker's event loop
    return await common.async_io()


@app.task(name="lat", queue="default")
def lat(seq, port):
    common.report_start(seq, port)
    return 1


if django_ready():  # W2-orm processes: Django set up with procrastinate.contrib.django
    from django.apps import apps as _django_apps

    if _django_apps.is_installed("procrastinate.contrib.django"):
        from procrastinate.contrib.django import app as django_app

        @django_app.task(name="orm", queue="default")
        def orm():  # SELECT 1 through django.db.connection
            return common.orm_select()


class Adapter(BaseAdapter):
    name = "procrastinate"
    title = "procrastinate"
    store = "postgres"
    dists = ["procrastinate", "psycopg", "psycopg-pool"]
    has_bulk = True
    bulk_note = "Task.batch_defer(*n kwargs) = one multi-row INSERT"
    single_note = "Task.defer() (sync API) = one INSERT + NOTIFY trigger"

    def env(self, db: str | None = None) -> dict:
        env = super().env()
        env["BENCH_PG_DSN"] = common.pg_dsn(db or self.db)
        return env

    def install_schema(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "procrastinate", "--app", APP_PATH, "schema", "--apply"],
            env=self.env(self.template_db), cwd=str(common.BENCH_DIR), check=True,
            timeout=120, stdout=subprocess.DEVNULL,
        )

    def _worker(self, *extra: str) -> list[str]:
        return [sys.executable, "-m", "procrastinate", "--app", APP_PATH, "worker", *extra]

    def variants(self, workload: str) -> list[Variant]:
        if workload == "W2":
            return [
                Variant("c1", [self._worker("--concurrency", "1")], 1, 0, "1 process, --concurrency 1 (default)"),
                Variant("c2", [self._worker("--concurrency", "2")], 2, 0, "1 process, --concurrency 2"),
            ]
        if workload == "W2-orm":
            env = self.orm_env(self.orm_settings(
                ("procrastinate.contrib.django",), conn_max_age=600,
                PROCRASTINATE_IMPORT_PATHS=[__name__]))
            worker = [sys.executable, "-m", "django", "procrastinate", "worker", "--concurrency", "2"]
            return [Variant("c2", [worker], 2, 0,
                            "1 process, --concurrency 2, procrastinate.contrib.django, CONN_MAX_AGE=600",
                            env=env)]
        if workload == "W2-async":
            return [
                Variant("c2x100", [self._worker("--concurrency", "100")] * 2, 200, 0,
                        "2 processes, --concurrency 100 each (async def task on the worker's loop)"),
                Variant("c200", [self._worker("--concurrency", "200")], 200, 0,
                        "1 process, --concurrency 200", extra=True),
            ]
        if workload == "W3":
            return [
                Variant("default", [self._worker()], 1, 0, "LISTEN/NOTIFY + 5 s poll (defaults)"),
                Variant("nolisten-poll-0.05",
                        [self._worker("--no-listen-notify", "--fetch-job-polling-interval", "0.05")],
                        1, 0.05, "--no-listen-notify --fetch-job-polling-interval 0.05", extra=True),
            ]
        return []

    def done_count(self, expected: int, cache: dict) -> int:
        return common.pg_scalar(
            self.db, "SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'", cache)

    def total_count(self, cache: dict) -> int:
        return common.pg_scalar(self.db, "SELECT count(*) FROM procrastinate_jobs", cache)

    # ----------------------------------------------------------- client side
    def client_setup(self) -> None:
        app.open()

    def client_close(self) -> None:
        app.close()

    def enqueue_noop(self, i: int) -> None:
        noop.defer()

    def enqueue_noop_bulk(self, n: int) -> None:
        noop.batch_defer(*({} for _ in range(n)))

    def enqueue_latency(self, seq: int, port: int) -> None:
        lat.defer(seq=seq, port=port)

    def enqueue_async(self, i: int) -> None:
        async_io.defer()

    def enqueue_async_bulk(self, n: int) -> None:
        async_io.batch_defer(*({} for _ in range(n)))

    def enqueue_orm(self, i: int) -> None:
        orm.defer()

    def enqueue_orm_bulk(self, n: int) -> None:
        orm.batch_defer(*({} for _ in range(n)))
