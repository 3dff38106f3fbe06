"""django-tasks DatabaseBackend + db_worker, on Django's built-in django.tasks.

Since django-tasks 0.12.0 the DatabaseBackend is no longer inside the
`django-tasks` distribution: it moved to `django-tasks-db` (same author, same
`db_worker` command). On Django >= 6.0 it plugs into the built-in
`django.tasks` framework, so the stack measured is Django 6.1 + django-tasks-db.

db_worker: one process runs one task at a time; claim = SELECT ... FOR UPDATE
SKIP LOCKED + UPDATE in one transaction, then the task runs in-process, then an
autocommit UPDATE records the result. Idle workers poll every --interval s
(default 1). Concurrency N = N db_worker processes.

The worker loop calls close_old_connections() around every iteration, so with
Django's default CONN_MAX_AGE=0 it reconnects to PostgreSQL for every job.
Main variants use CONN_MAX_AGE=600 (persistent connections, the usual
production setting); "-conn0" variants show Django's default.

W2-orm: the job's SELECT 1 goes through the worker's own Django connection
(the one it claims jobs with), so no connection is opened per job.

W2-async: the same `async def` task as django_jobs' (common.async_io). It
runs: django.tasks' Task.call() wraps a coroutine function in async_to_sync,
but db_worker has no in-process concurrency (no threads, no event loop of its
own: one job at a time per process, django-tasks-db 0.13), so c2 = 2
db_worker processes, two jobs at once.
"""

from __future__ import annotations

import json
import subprocess
import sys

from .. import common
from ..base import Adapter as BaseAdapter
from ..base import Variant, django_ready

if django_ready():  # only inside processes where django.setup() has run
    from django.tasks import task

    @task
    def dt_noop():
        return 1

    @task
    def dt_lat(seq, port):
        common.report_start(seq, port)
        return 1

    @task
    def dt_orm():  # W2-orm: SELECT 1 through django.db.connection
        return common.orm_select()

    @task
    async def dt_async():  # W2-async: 100 ms awaited (async_to_sync in db_worker)
        return await common.async_io()


TABLE = "django_tasks_database_dbtaskresult"  # app label is django_tasks_database


class Adapter(BaseAdapter):
    name = "django_tasks"
    title = "django-tasks (DB backend)"
    store = "postgres"
    dists = ["Django", "django-tasks-db", "psycopg"]
    has_bulk = False
    bulk_note = "no bulk API (Task.enqueue = one INSERT)"
    single_note = "Task.enqueue() under autocommit = 1 INSERT"

    def django_settings(self, db: str | None = None, conn_max_age: int = 600) -> dict:
        return {
            "INSTALLED_APPS": ["django_tasks_db"],
            "DATABASES": {
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": db or self.db,
                    "HOST": common.PG_HOST,
                    "PORT": common.PG_PORT,
                    "USER": common.PG_USER,
                    "CONN_MAX_AGE": conn_max_age,
                }
            },
            "TASKS": {
                "default": {
                    "BACKEND": "django_tasks_db.DatabaseBackend",
                    "QUEUES": ["default"],
                }
            },
        }

    def _env_for(self, db: str) -> dict:
        env = self.env()
        env["BENCH_DJANGO_SETTINGS"] = json.dumps(self.django_settings(db))
        return env

    def install_schema(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            env=self._env_for(self.template_db),
            cwd=str(common.BENCH_DIR),
            check=True,
            timeout=120,
        )

    def _worker(self, interval: float) -> list[str]:
        return [
            sys.executable, "-m", "django", "db_worker",
            "--interval", str(interval),
            "--no-startup-delay",  # random 0-1 s thundering-herd sleep at start
            "--no-reload",
        ]

    def variants(self, workload: str) -> list[Variant]:
        conn0 = {"BENCH_DJANGO_SETTINGS": json.dumps(self.django_settings(conn_max_age=0))}
        if workload == "W2":
            return [
                Variant("c1", [self._worker(1)], 1, 1.0, "1 db_worker process, CONN_MAX_AGE=600"),
                Variant("c2", [self._worker(1)] * 2, 2, 1.0, "2 db_worker processes, CONN_MAX_AGE=600"),
                Variant("c1-conn0", [self._worker(1)], 1, 1.0,
                        "1 db_worker, CONN_MAX_AGE=0 (Django default): reconnect per job",
                        jobs=500, env=conn0, extra=True),
            ]
        if workload == "W2-orm":
            return [Variant("c2", [self._worker(1)] * 2, 2, 1.0, "2 db_worker processes, CONN_MAX_AGE=600")]
        if workload == "W2-async":
            return [Variant("c2", [self._worker(1)] * 2, 2, 1.0,
                            "2 db_worker processes, one job at a time each (no in-process concurrency)")]
        if workload == "W3":
            return [
                Variant("default", [self._worker(1)], 1, 1.0, "--interval 1 (default)", jobs=20),
                Variant("poll-0.05", [self._worker(0.05)], 1, 0.05, "--interval 0.05"),
            ]
        return []  # no per-job process mode

    def done_count(self, expected: int, cache: dict) -> int:
        return common.pg_scalar(
            self.db, f"SELECT count(*) FROM {TABLE} WHERE status = 'SUCCESSFUL'", cache
        )

    def total_count(self, cache: dict) -> int:
        return common.pg_scalar(self.db, f"SELECT count(*) FROM {TABLE}", cache)

    # ----------------------------------------------------------- client side
    def enqueue_noop(self, i: int) -> None:
        dt_noop.enqueue()

    def enqueue_latency(self, seq: int, port: int) -> None:
        dt_lat.enqueue(seq, port)

    def enqueue_orm(self, i: int) -> None:
        dt_orm.enqueue()

    def enqueue_async(self, i: int) -> None:
        dt_async.enqueue()
