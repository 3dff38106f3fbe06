"""RQ (Redis).

`rq worker` with the default Worker class forks a "work horse" child per job
(the isolation mode); SimpleWorker runs jobs in the worker process. Idle
workers block on BLPOP (push). Concurrency N = N worker processes.
Done = the job's id in the FinishedJobRegistry (ZSET rq:finished:default).

W2-orm: RQ with Django as django-rq's `rqworker` runs it: the worker process
is `python -m harness.adapters.peer_rq worker ...`, which calls django.setup()
(settings from the environment, default database bench_rq, an empty
PostgreSQL database, CONN_MAX_AGE=600), closes every Django connection
"before any fork" as rqworker does (which also imports the PostgreSQL
backend and psycopg into the parent: without that, each forked work horse
imported them again, ~90 ms per job here), then runs `rq worker`. The worker
itself never touches the database, so a forking Worker's work horse opens a
new connection for its one job (and exits without closing it), while a
SimpleWorker keeps one connection for all its jobs.

W2-async: RQ has no in-process concurrency: a worker runs one job at a time
(a coroutine function's coroutine is run to completion on an event loop of
its own, rq.job). So the only shape is N processes; simple-c2 (2
SimpleWorker processes, the `async def` common.async_io) is a secondary
variant (EXTRA=yes), it takes ~50 s per run.
"""

from __future__ import annotations

import sys

from .. import common
from ..base import Adapter as BaseAdapter
from ..base import Variant

REDIS_DB = 1


def noop():
    return 1


def lat(seq, port):
    common.report_start(seq, port)
    return 1


def orm():  # W2-orm: SELECT 1 through django.db.connection
    return common.orm_select()


async def async_io():  # W2-async: run to completion by the worker, one at a time
    return await common.async_io()


class Adapter(BaseAdapter):
    name = "rq"
    title = "RQ"
    store = "redis"
    redis_db = REDIS_DB
    dists = ["rq", "redis"]
    needs_orm_db = True
    has_bulk = True
    bulk_note = "Queue.enqueue_many(prepare_data x n) = one Redis pipeline"
    single_note = "Queue.enqueue() = one MULTI/EXEC pipeline"

    def _worker(self, cls: str) -> list[str]:
        return [common.venv_bin("rq"), "worker", "-u", common.redis_url(REDIS_DB),
                "-w", cls, "default"]

    def _django_worker(self, cls: str) -> list[str]:
        """`rq worker` after django.setup() (W2-orm), see __main__ below."""
        return [sys.executable, "-m", "harness.adapters.peer_rq", *self._worker(cls)[1:]]

    def variants(self, workload: str) -> list[Variant]:
        simple = self._worker("rq.worker.SimpleWorker")
        fork = self._worker("rq.worker.Worker")
        if workload == "W2-orm":
            env = self.orm_env(self.orm_settings(conn_max_age=600))
            dj_fork = self._django_worker("rq.worker.Worker")
            dj_simple = self._django_worker("rq.worker.SimpleWorker")
            return [
                Variant("fork-c2", [dj_fork] * 2, 2, 0,
                        "2 Worker processes, fork per job; django.setup() in the worker", env=env),
                Variant("simple-c2", [dj_simple] * 2, 2, 0,
                        "2 SimpleWorker processes; django.setup() in the worker, CONN_MAX_AGE=600", env=env),
            ]
        if workload == "W2-async":
            return [Variant("simple-c2", [simple] * 2, 2, 0,
                            "2 SimpleWorker processes, one job at a time each (no in-process concurrency)",
                            extra=True)]
        if workload == "W2":
            return [
                Variant("simple-c1", [simple], 1, 0, "1 SimpleWorker process (no fork)"),
                Variant("simple-c2", [simple] * 2, 2, 0, "2 SimpleWorker processes"),
            ]
        if workload == "W2-iso":
            return [
                Variant("fork-c1", [fork], 1, 0, "1 Worker, fork()s a work horse per job (default class)",
                        jobs=300),
                Variant("fork-c2", [fork] * 2, 2, 0, "2 Worker processes, fork per job", jobs=300),
            ]
        if workload == "W3":
            return [
                Variant("simple", [simple], 1, 0, "SimpleWorker, BLPOP"),
                Variant("fork", [fork], 1, 0, "Worker (fork per job), BLPOP"),
            ]
        return []

    def _r(self, cache: dict):
        r = cache.get("redis")
        if r is None:
            r = cache["redis"] = common.redis_client(REDIS_DB)
        return r

    def done_count(self, expected: int, cache: dict) -> int:
        return self._r(cache).zcard("rq:finished:default")

    def total_count(self, cache: dict) -> int:
        return self._r(cache).llen("rq:queue:default")

    # ----------------------------------------------------------- client side
    def client_setup(self) -> None:
        from rq import Queue

        self.q = Queue("default", connection=common.redis_client(REDIS_DB))

    def enqueue_noop(self, i: int) -> None:
        self.q.enqueue(noop)

    def enqueue_noop_bulk(self, n: int) -> None:
        from rq import Queue

        self.q.enqueue_many([Queue.prepare_data(noop) for _ in range(n)])

    def enqueue_latency(self, seq: int, port: int) -> None:
        self.q.enqueue(lat, seq, port)

    def enqueue_orm(self, i: int) -> None:
        self.q.enqueue(orm)

    def enqueue_orm_bulk(self, n: int) -> None:
        from rq import Queue

        self.q.enqueue_many([Queue.prepare_data(orm) for _ in range(n)])

    def enqueue_async(self, i: int) -> None:
        self.q.enqueue(async_io)

    def enqueue_async_bulk(self, n: int) -> None:
        from rq import Queue

        self.q.enqueue_many([Queue.prepare_data(async_io) for _ in range(n)])


if __name__ == "__main__":
    # W2-orm worker: Django first, then what django-rq's `manage.py rqworker`
    # does before working (reset_db_connections(): close every connection
    # before any fork), then the `rq` command line with this process's arguments.
    import django

    django.setup()
    from django.db import connections

    for c in connections.all():
        c.close()
    from rq.cli import main

    main(sys.argv[1:], prog_name="rq")
