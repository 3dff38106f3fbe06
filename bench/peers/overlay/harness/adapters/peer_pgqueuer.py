"""pgqueuer (PostgreSQL, asyncio; asyncpg in the worker).

Worker: one asyncio process fetching batches of
--batch-size jobs (default 10) with SELECT ... FOR UPDATE SKIP LOCKED; idle
workers wake on LISTEN/NOTIFY (--dequeue-timeout 30 s safety poll).
Entrypoints must be `async def` (sync ones are rejected by 1.6). Completion
is buffered and written in batches: the job row is DELETEd and a
'successful' row INSERTed into pgqueuer_log. Concurrency limits are per
entrypoint (`concurrency_limit`, enforced in SQL; harness env BENCH_PGQ_LIMIT,
0 = unlimited, the default) or global per worker (`max_concurrent_tasks`,
which must be >= 2 x batch_size; BENCH_PGQ_MAX / BENCH_PGQ_BATCH).
No per-job process mode.

W2-async: an entrypoint awaiting common.async_io (100 ms): c2x100 = 2 worker
processes, max_concurrent_tasks=100 each (batch_size 10, the default).

The worker is started as `python -m harness.adapters.peer_pgqueuer`, which
calls pgqueuer.run(factory) on uvloop -- what `pgq run module:factory` does --
because `pgq run` 1.6.0 crashes at start with typer 0.29 (its --log-level
option reaches setup_fancy_logger as a str: AttributeError 'name').
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

from .. import common
from ..base import Adapter as BaseAdapter
from ..base import Variant



@contextlib.asynccontextmanager
async def create_pgqueuer():
    import asyncpg
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver

    conn = await asyncpg.connect(os.environ["BENCH_PG_DSN"])
    pgq = PgQueuer(AsyncpgDriver(conn))
    limit = int(os.environ.get("BENCH_PGQ_LIMIT", "0"))

    @pgq.entrypoint("noop", concurrency_limit=limit)
    async def noop(job):
        return None

    @pgq.entrypoint("async_io", concurrency_limit=limit)
    async def async_io(job):  # W2-async: 100 ms awaited
        await common.async_io()

    @pgq.entrypoint("lat", concurrency_limit=limit)
    async def lat(job):
        seq, port = job.payload.decode().split()
        common.report_start(int(seq), int(port))

    try:
        yield pgq
    finally:
        await conn.close()


class Adapter(BaseAdapter):
    name = "pgqueuer"
    title = "pgqueuer"
    store = "postgres"
    dists = ["pgqueuer", "asyncpg", "psycopg"]
    has_bulk = True
    bulk_note = "Queries.enqueue([...n]) = one INSERT ... SELECT unnest()"
    single_note = "SyncQueries.enqueue() (psycopg, autocommit) = one INSERT (+log row, NOTIFY)"

    def env(self, db: str | None = None) -> dict:
        env = super().env()
        env["BENCH_PG_DSN"] = common.pg_dsn(db or self.db)
        env["PGDSN"] = env["BENCH_PG_DSN"]
        return env

    def install_schema(self) -> None:
        subprocess.run(
            [common.venv_bin("pgq"), "install"],
            env=self.env(self.template_db), cwd=str(common.BENCH_DIR), check=True,
            timeout=120, stdout=subprocess.DEVNULL,
        )

    def _worker(self) -> list[str]:
        return [sys.executable, "-m", "harness.adapters.peer_pgqueuer"]

    def variants(self, workload: str) -> list[Variant]:
        w = self._worker()
        if workload == "W2":
            return [
                Variant("default", [w], 0, 0, "1 process, no concurrency cap, batch_size 10 (defaults)"),
                Variant("c2", [w], 2, 0, "max_concurrent_tasks=2, batch_size=1 (tightest global cap allowed)",
                        env={"BENCH_PGQ_BATCH": "1", "BENCH_PGQ_MAX": "2"}),
                Variant("limit1", [w], 1, 0,
                        "entrypoint concurrency_limit=1: next pick waits for the 0.1 s completion-buffer flush",
                        jobs=100, env={"BENCH_PGQ_LIMIT": "1"}, extra=True),
            ]
        if workload == "W2-async":
            return [Variant("c2x100", [w] * 2, 200, 0, "2 processes, max_concurrent_tasks=100 each, batch_size 10",
                            env={"BENCH_PGQ_MAX": "100"})]
        if workload == "W3":
            return [Variant("default", [w], 1, 0, "LISTEN/NOTIFY (defaults)")]
        return []

    def done_count(self, expected: int, cache: dict) -> int:
        return common.pg_scalar(
            self.db, "SELECT count(*) FROM pgqueuer_log WHERE status = 'successful'", cache)

    def total_count(self, cache: dict) -> int:
        return common.pg_scalar(self.db, "SELECT count(*) FROM pgqueuer", cache)

    # ----------------------------------------------------------- client side
    def client_setup(self) -> None:
        import psycopg
        from pgqueuer.adapters.drivers.psycopg import SyncPsycopgDriver
        from pgqueuer.queries import SyncQueries

        self.conn = psycopg.connect(os.environ["BENCH_PG_DSN"], autocommit=True)
        self.q = SyncQueries(SyncPsycopgDriver(self.conn))

    def client_close(self) -> None:
        self.conn.close()

    def enqueue_noop(self, i: int) -> None:
        self.q.enqueue("noop", None)

    def enqueue_noop_bulk(self, n: int) -> None:
        self.q.enqueue(["noop"] * n, [None] * n, [0] * n)

    def enqueue_latency(self, seq: int, port: int) -> None:
        self.q.enqueue("lat", f"{seq} {port}".encode())

    def enqueue_async(self, i: int) -> None:
        self.q.enqueue("async_io", None)

    def enqueue_async_bulk(self, n: int) -> None:
        self.q.enqueue(["async_io"] * n, [None] * n, [0] * n)


def _main() -> None:
    """Worker entry point: the programmatic form of `pgq run` (defaults)."""
    import asyncio
    import logging

    from pgqueuer import run

    logging.basicConfig(level=logging.WARNING)
    coro = run(
        create_pgqueuer,
        batch_size=int(os.environ.get("BENCH_PGQ_BATCH", "10")),
        max_concurrent_tasks=int(os.environ.get("BENCH_PGQ_MAX", "0")) or None,
    )
    try:
        import uvloop
    except ImportError:
        asyncio.run(coro)
    else:
        uvloop.run(coro)


if __name__ == "__main__":
    _main()
