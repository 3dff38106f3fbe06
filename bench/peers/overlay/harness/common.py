"""Shared helpers: connection settings, database reset, worker process control,
the latency side channel used by W3 jobs, the W2-orm and W2-async job bodies.

Everything here talks to 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

PG_HOST = "127.0.0.1"
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "5432"))
PG_USER = os.environ.get("BENCH_PG_USER", "postgres")
REDIS_HOST = "127.0.0.1"
REDIS_PORT = int(os.environ.get("BENCH_REDIS_PORT", "6379"))

# bench/peers/ (the folder that holds harness/); put on PYTHONPATH for workers.
BENCH_DIR = Path(__file__).resolve().parent.parent
# Logs of worker processes go outside the repository.
LOG_DIR = Path(os.environ.get("BENCH_LOG_DIR", "/tmp/peers/logs"))


def pg_dsn(db: str) -> str:
    return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{db}"


def redis_url(db: int) -> str:
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}"


# --------------------------------------------------------------------------
# PostgreSQL administration (runs in the orchestrator)
# --------------------------------------------------------------------------

def admin_exec(*statements: str) -> None:
    import psycopg

    with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
        for st in statements:
            conn.execute(st)


def recreate_db(name: str, template: str | None = None) -> None:
    """DROP (forcefully) and CREATE a database, optionally from a template."""
    tpl = f" TEMPLATE {template}" if template else ""
    admin_exec(
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        f"CREATE DATABASE {name}{tpl}",
    )


def drop_db(name: str) -> None:
    admin_exec(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def checkpoint() -> None:
    """Flush dirty buffers so a checkpoint does not land inside a timed run."""
    admin_exec("CHECKPOINT")


def pg_scalar(db: str, sql: str, conn_cache: dict | None = None):
    """Run a scalar query; reuses a cached autocommit connection if given."""
    import psycopg

    if conn_cache is not None:
        conn = conn_cache.get(db)
        if conn is None or conn.closed:
            conn = psycopg.connect(pg_dsn(db), autocommit=True)
            conn_cache[db] = conn
        return conn.execute(sql).fetchone()[0]
    with psycopg.connect(pg_dsn(db), autocommit=True) as conn:
        return conn.execute(sql).fetchone()[0]


def pg_server_version() -> str:
    return str(pg_scalar("postgres", "SHOW server_version"))


def redis_client(db: int):
    import redis

    return redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db)


def redis_server_version() -> str | None:
    try:
        return redis_client(0).info("server")["redis_version"]
    except Exception:
        return None


# --------------------------------------------------------------------------
# Worker processes
# --------------------------------------------------------------------------

def bench_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(BENCH_DIR) + (
        os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    env["PYTHONUNBUFFERED"] = "1"
    # Keep bytecode out of the repository. Do NOT use PYTHONPYCACHEPREFIX:
    # it hides the .pyc files pip wrote into site-packages, and with writing
    # disabled every worker start would recompile Django from source.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPYCACHEPREFIX", None)
    if extra:
        env.update(extra)
    return env


def venv_bin(name: str) -> str:
    """Path of a console script installed next to the running interpreter."""
    return str(Path(sys.executable).parent / name)


class Proc:
    """A worker process started in its own session (process group == pid).

    stop() sends SIGTERM to that pid, waits up to 3 s, then SIGKILLs the
    process group it created (its own children only) if anything is left.
    (Measurements are over by then; a slow graceful shutdown is not timed.)
    """

    def __init__(self, argv: list[str], env: dict, log_name: str):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.log_path = LOG_DIR / log_name
        self._log = open(self.log_path, "ab")
        self._log.write(f"\n===== {time.strftime('%H:%M:%S')} {' '.join(argv)}\n".encode())
        self._log.flush()
        self.argv = argv
        self.p = subprocess.Popen(
            argv,
            env=env,
            cwd=str(BENCH_DIR),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p.poll() is None

    def stop(self, grace: float = 3.0, sig: int = signal.SIGTERM) -> None:
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left in the group this process created.
        try:
            os.killpg(self.p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


# --------------------------------------------------------------------------
# Latency side channel: a W3 job sends "<seq> <time.time()>" by UDP when it
# starts. Nothing peer-specific, so every peer pays the same (tiny) cost.
# --------------------------------------------------------------------------

_sock = None


def report_start(seq: int, port: int) -> None:
    t = time.time()
    global _sock
    if _sock is None:
        _sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    _sock.sendto(f"{seq} {t!r}".encode(), ("127.0.0.1", int(port)))


# --------------------------------------------------------------------------
# W2-orm job body: what a Django job does at the least, one statement through
# Django's own connection to the default database (opened by Django if the
# process has none yet).
# --------------------------------------------------------------------------

def django_database(name: str, conn_max_age: int = 600) -> dict:
    """A DATABASES entry for the bench database `name` (psycopg 3)."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": name,
        "HOST": PG_HOST,
        "PORT": PG_PORT,
        "USER": PG_USER,
        "CONN_MAX_AGE": conn_max_age,
    }


def orm_select() -> int:
    """Run SELECT 1 on django.db.connection; the caller has set Django up."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute("SELECT 1")
        return cur.fetchone()[0]


# --------------------------------------------------------------------------
# W2-async job body: a job that waits on I/O for ASYNC_IO_S seconds and uses
# no CPU meanwhile. `async def` where the peer runs coroutines; time.sleep in
# a thread (or a process) where it runs only sync functions.
# --------------------------------------------------------------------------

ASYNC_IO_S = float(os.environ.get("BENCH_ASYNC_IO_S", "0.1"))


async def async_io() -> int:
    """await asyncio.sleep(ASYNC_IO_S)."""
    import asyncio

    await asyncio.sleep(ASYNC_IO_S)
    return 1


def sync_io() -> int:
    """time.sleep(ASYNC_IO_S): the same wait for peers without coroutines."""
    time.sleep(ASYNC_IO_S)
    return 1


def rusage_children_cpu() -> float:
    """CPU seconds (user + system) of this process's reaped descendants."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def emit(obj: dict) -> None:
    """Print a result line for the orchestrator (last line of stdout)."""
    sys.stdout.write("BENCH_RESULT " + json.dumps(obj) + "\n")
    sys.stdout.flush()
