"""Celery (Redis broker, prefork pool).

Worker: a parent process fetches messages (BRPOP, push) and hands them to
prefork child processes over pipes; -c N children (default = number of CPUs,
2 here). `--max-tasks-per-child=1` replaces the child after every task (the
isolation mode). Defaults otherwise (prefetch multiplier 4, early ack,
mingle/gossip/heartbeat on).

Observed here (celery 5.7.0 / billiard 4.3.2 / Python 3.12): with
--max-tasks-per-child=1 the replacement child is often only started by the
pool's 5 s maintain_pool timer, so many jobs wait ~5 s; the iso variants
therefore use few jobs.

Done = a result stored by the Redis result backend; results live in their own
Redis database so the harness can count them with DBSIZE (O(1)). A failed
task stores a result too, so check_done() reads every status after a run.

W2-orm: the variant's environment sets DJANGO_SETTINGS_MODULE, so the app
built below installs Celery's Django fixup (celery.fixups.django, what a
Django project's celery.py gets): the worker calls django.setup() and runs
Django's checks before importing tasks, each prefork child closes the
connections inherited from the parent, and the fixup closes Django's
connections before and after every task (CELERY_DB_REUSE_MAX unset).
Default database: bench_celery, an empty PostgreSQL database.

W2-async: Celery runs no coroutines (an `async def` task would return an
un-awaited coroutine), so the job is common.sync_io, time.sleep(0.1), in the
threads pool: threads-c2x100 = 2 worker processes with `-P threads -c 100`
(200 jobs at once; each its own -n node name). A gevent pool would need
gevent, which is not in requirements.txt.
"""

from __future__ import annotations

import json

from celery import Celery

from .. import common
from ..base import Adapter as BaseAdapter
from ..base import Variant

BROKER_DB = 2
RESULT_DB = 3

app = Celery("bench", broker=common.redis_url(BROKER_DB), backend=common.redis_url(RESULT_DB))
app.conf.update(
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="noop")
def noop():
    return 1


@app.task(name="lat")
def lat(seq, port):
    common.report_start(seq, port)
    return 1


@app.task(name="sync_io")
def sync_io():  # W2-async: time.sleep(0.1) in a pool thread
    return common.sync_io()


@app.task(name="orm")
def orm():  # W2-orm: SELECT 1 through django.db.connection
    return common.orm_select()


class Adapter(BaseAdapter):
    name = "celery"
    title = "Celery"
    store = "redis"
    redis_db = BROKER_DB
    extra_redis_dbs = [RESULT_DB]
    dists = ["celery", "kombu", "billiard", "redis"]
    needs_orm_db = True
    has_bulk = True
    fill_with_bulk = False  # group() is slower than delay() in a loop
    bulk_note = "no bulk API: group(n signatures).apply_async() = n LPUSHes on one connection"
    single_note = "task.delay() = one LPUSH"

    def _worker(self, c: int, *extra: str, pool: str = "prefork") -> list[str]:
        return [common.venv_bin("celery"), "-A", "harness.adapters.peer_celery", "worker",
                "-P", pool, "-c", str(c), "-l", "WARNING", *extra]

    def variants(self, workload: str) -> list[Variant]:
        if workload == "W2":
            return [
                Variant("prefork-c1", [self._worker(1)], 1, 0, "prefork -c 1"),
                Variant("prefork-c2", [self._worker(2)], 2, 0, "prefork -c 2 (default on 2 CPUs)"),
            ]
        if workload == "W2-iso":
            return [
                Variant("mtpc1-c1", [self._worker(1, "--max-tasks-per-child=1")], 1, 0,
                        "prefork -c 1 --max-tasks-per-child=1", jobs=10),
                Variant("mtpc1-c2", [self._worker(2, "--max-tasks-per-child=1")], 2, 0,
                        "prefork -c 2 --max-tasks-per-child=1", jobs=30),
            ]
        if workload == "W2-orm":
            env = self.orm_env(self.orm_settings(conn_max_age=600))
            return [Variant("prefork-c2", [self._worker(2)], 2, 0,
                            "prefork -c 2, Django fixup (django.setup() in the worker), CONN_MAX_AGE=600",
                            env=env)]
        if workload == "W2-async":
            threads = [self._worker(100, "-n", f"w{k}@%h", pool="threads") for k in (1, 2)]
            return [Variant("threads-c2x100", threads, 200, 0,
                            "2 processes, -P threads -c 100 each; the job is time.sleep(0.1) (no coroutines)")]
        if workload == "W3":
            return [
                Variant("prefork-c1", [self._worker(1)], 1, 0, "prefork -c 1, BRPOP"),
                Variant("mtpc1-c1", [self._worker(1, "--max-tasks-per-child=1")], 1, 0,
                        "prefork -c 1 --max-tasks-per-child=1", jobs=20, extra=True),
            ]
        return []

    def w1_variants(self) -> list[Variant]:
        single, group_ = super().w1_variants()
        group_.extra = True  # not a bulk API; shown for completeness
        return [single, group_]

    def done_count(self, expected: int, cache: dict) -> int:
        r = cache.get("res")
        if r is None:
            r = cache["res"] = common.redis_client(RESULT_DB)
        return r.dbsize()

    def check_done(self, n: int) -> None:
        r = common.redis_client(RESULT_DB)
        keys = list(r.scan_iter(count=1000))
        if not keys:
            return
        bad = [m for m in r.mget(keys) if m is None or json.loads(m).get("status") != "SUCCESS"]
        if bad:
            raise RuntimeError(f"{len(bad)} of {len(keys)} stored results are not SUCCESS: {bad[0]!r:.300}")

    def total_count(self, cache: dict) -> int:
        return common.redis_client(BROKER_DB).llen("celery")

    # ----------------------------------------------------------- client side
    def enqueue_noop(self, i: int) -> None:
        noop.delay()

    def enqueue_noop_bulk(self, n: int) -> None:
        from celery import group

        group(noop.s() for _ in range(n)).apply_async()

    def enqueue_latency(self, seq: int, port: int) -> None:
        lat.delay(seq, port)

    def enqueue_orm(self, i: int) -> None:
        orm.delay()

    def enqueue_async(self, i: int) -> None:
        sync_io.delay()
