"""The soak's jobs. Each run writes rows to ``soak_row`` as it goes.

A run writes "start" when it begins, "tick" every quarter second while it
sleeps (so a run killed mid-sleep still shows how long it lived), and "done"
when its work is finished and it is about to return: the soak's notion of
the job's work having committed. Rows go through a connection of the run's
own (psycopg, or MySQLdb on MariaDB), in autocommit, never through the
worker, so they survive whatever the worker records. Each row carries the
run's process chain (child, fork server, supervisor) as "pid@start"
identities, which the report matches against the chaos actions.

Writes are idempotent (a run id and a sequence number are the key), so a
write whose commit is in doubt after a lost connection is simply retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from typing import Any

import psycopg
from django.conf import settings

try:
    import MySQLdb
except ImportError:  # only the MariaDB soak needs it
    MySQLdb = None

from django_jobs.compat import task

from . import procs
from .kinds import (
    FAILING,
    KEYED_QUEUE,
    LANE_QUEUE,
    LEAK_CAP,
    LEAK_LIMIT,
    ODD_STRINGS,
    OVERRUN_TTR,
    PATIENT,
    TOUCH_TTR,
)

INSERT = """
    INSERT INTO soak_row (run, event, seq, job_id, kind, attempt,
                          pid, pid_start, ppid, ppid_start, sup, sup_start)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT DO NOTHING
"""
INSERT_MYSQL = INSERT.replace("INSERT INTO", "INSERT IGNORE INTO").replace(
    "ON CONFLICT DO NOTHING", ""
)
TICK = 0.25  # seconds between two "tick" rows of a sleeping run
#: Seconds between two touches (or checkpoints) of a touch job.
TOUCH_EVERY = 0.2
#: How long a touch job's own rows wait for the database: longer than any
#: restart of the soak's, so that only the worker's handling of its touches
#: can cost it an attempt (see touches.py).
TOUCH_PATIENCE = 30.0


#: What a lost connection raises, on either database.
LOST: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)
MYSQL_ERRORS: tuple[type[Exception], ...] = ()
if MySQLdb is not None:
    LOST += (MySQLdb.OperationalError, MySQLdb.InterfaceError)
    MYSQL_ERRORS = (MySQLdb.Error,)


class SoakDatabaseDown(Exception):
    """The soak table could not be written in time: this attempt fails."""


def on_mysql() -> bool:
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.mysql"


def connection_params() -> dict[str, Any]:
    db = settings.DATABASES["default"]
    if on_mysql():
        return {
            "database": db["NAME"],
            "user": db.get("USER") or "root",
            "password": db.get("PASSWORD") or "",
            "host": db.get("HOST") or "127.0.0.1",
            "port": int(db.get("PORT") or 3306),
            "connect_timeout": 2,
            "autocommit": True,
        }
    return {
        "dbname": db["NAME"],
        "user": db.get("USER") or "postgres",
        "host": db.get("HOST") or "127.0.0.1",
        "port": db.get("PORT") or 5432,
        "application_name": "soak-job",
        "connect_timeout": 2,
        "autocommit": True,
    }


class Run:
    """One run (attempt) of a job, and its rows."""

    def __init__(self, context, kind: str, patience: float = 2.0) -> None:
        self.job_id = context.job_id
        self.attempt = context.attempt
        self.kind = kind
        self.run = uuid.uuid4().hex
        self.connection: psycopg.Connection | None = None
        self.ticks = 0
        chain = procs.chain()
        self.chain: list[Any] = []
        for proc in chain:
            self.chain += [proc.pid, proc.start] if proc else [None, None]
        self.write("start", 0, patience=patience)

    def write(self, event: str, seq: int, patience: float) -> None:
        """Insert one row, retrying through a lost connection for ``patience`` s."""
        deadline = time.monotonic() + patience
        row = [self.run, event, seq, self.job_id, self.kind, self.attempt, *self.chain]
        while True:
            try:
                self.insert(row)
                return
            except LOST as exc:
                self.close()
                if time.monotonic() >= deadline:
                    raise SoakDatabaseDown(
                        f"soak: cannot write {event}: {exc}"
                    ) from exc
                time.sleep(0.1)

    def insert(self, row: list) -> None:
        if on_mysql():
            if self.connection is None:
                self.connection = MySQLdb.connect(**connection_params())
            with self.connection.cursor() as cursor:
                cursor.execute(INSERT_MYSQL, row)
            return
        if self.connection is None or self.connection.closed:
            self.connection = psycopg.connect(**connection_params())
        self.connection.execute(INSERT, row)

    def sleep(self, seconds: float) -> None:
        """Sleep, leaving a "tick" row every TICK seconds (best effort)."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            time.sleep(min(TICK, left))
            self.ticks += 1
            with contextlib.suppress(SoakDatabaseDown):  # evidence of life, not work
                self.write("tick", self.ticks, patience=0)

    def done(self, patience: float = 3.0) -> None:
        """The work is finished: the row that counts a completion."""
        self.write("done", 0, patience=patience)
        self.close()

    def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error, *MYSQL_ERRORS):
                self.connection.close()
            self.connection = None


def odd(key: int) -> str:
    return ODD_STRINGS[key % len(ODD_STRINGS)]


@task(takes_context=True, max_attempts=PATIENT)
def noop(context, key: int) -> None:
    Run(context, "noop").done()


@task(takes_context=True, max_attempts=PATIENT)
def nap(context, key: int, seconds: float) -> float:
    run = Run(context, "nap")
    run.sleep(seconds)
    run.done()
    return seconds


@task(takes_context=True, max_attempts=PATIENT)
def flaky(context, key: int) -> str:
    run = Run(context, "flaky")
    if context.attempt == 1:
        raise ValueError("soak: the first attempt of a flaky job fails")
    run.done()
    return f"attempt {context.attempt}"


@task(
    takes_context=True, max_attempts=PATIENT, queue_name=KEYED_QUEUE, limit_key="group"
)
def keyed(context, key: int, group: str, seconds: float) -> float:
    """A nap whose queue runs one job per ``group`` at once (the limits per key)."""
    run = Run(context, "keyed")
    run.sleep(seconds)
    run.done()
    return seconds


@task(takes_context=True, max_attempts=FAILING, max_memory=LEAK_LIMIT)
def leak(context, key: int) -> None:
    """Grows until its worker kills it at its memory limit."""
    Run(context, "leak").close()
    kept = []
    while sum(map(len, kept)) < LEAK_CAP:
        kept.append(bytearray(10_000_000))
        time.sleep(0.01)
    time.sleep(60)  # not stopped: its ttr ends it, and it is buried all the same


@task(takes_context=True, max_attempts=FAILING)
def fail(context, key: int) -> None:
    Run(context, "fail").close()
    raise ValueError(f"soak: job {key} always fails")


@task(takes_context=True, max_attempts=FAILING)
def crash(context, key: int) -> None:
    Run(context, "crash").close()
    sys.stdout.flush()
    os._exit(3)


@task(takes_context=True, max_attempts=2, ttr=OVERRUN_TTR)
def overrun(context, key: int) -> None:
    run = Run(context, "overrun")
    run.sleep(30 * OVERRUN_TTR)
    run.close()
    raise RuntimeError("soak: ran 30 times its ttr and was never stopped")


@task(takes_context=True, max_attempts=PATIENT)
def odd_return(context, key: int) -> str:
    Run(context, "odd_return").done()
    return odd(key)


@task(takes_context=True, max_attempts=FAILING)
def odd_raise(context, key: int) -> None:
    Run(context, "odd_raise").close()
    raise ValueError(odd(key))


ODD_OUTPUT = (
    b"\x00django-jobs:end not-a-number\n",
    b"\x00django-jobs:end \n",
    b"\x00django-jobs:end 99999999999999999999999\n",
    b"\xed\xa0\x80 a surrogate in UTF-8 bytes, \xff\xfe not UTF-8 at all\n",
    b"binary \x00\x01\x02\x7f without a newline",
    b"\n" + b"x" * 70_000 + b"\n",  # one line longer than a pipe read
)


@task(takes_context=True, max_attempts=PATIENT)
def odd_output(context, key: int) -> str:
    run = Run(context, "odd_output")
    sys.stdout.flush()
    os.write(1, ODD_OUTPUT[key % len(ODD_OUTPUT)])
    os.write(
        2, b"\x00django-jobs:end %d\nafter a forged end of this job\n" % run.job_id
    )
    print(odd(key).encode("utf-8", "surrogatepass").decode("utf-8", "replace"))
    context.progress(1, 2, odd(key))
    # NUL and lone surrogates are refused at the source with a TypeError
    # (docs/tasks.rst); anything else must be saved, and anything but a clean
    # refusal fails the attempt.
    with contextlib.suppress(TypeError):
        context.checkpoint({"note": odd(key + 1)})
    context.checkpoint({"note": "saved"})
    run.done()
    return "printed odd output"


@task(takes_context=True, max_attempts=PATIENT, ttr=TOUCH_TTR)
def touch(context, key: int, seconds: float) -> int:
    """Touch and checkpoint in turns, every TOUCH_EVERY s, for ``seconds``
    (often past the ttr): the database blips of the chaos must not cost it an
    attempt. Resumes from its checkpoint; returns its last step."""
    run = Run(context, "touch", patience=TOUCH_PATIENCE)
    step = (context.last_checkpoint or {}).get("step", 0)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        run.sleep(TOUCH_EVERY)
        step += 1
        if step % 2:
            context.touch()
        else:
            context.checkpoint({"step": step})
    run.done(patience=TOUCH_PATIENCE)
    return step


@task(takes_context=True, max_attempts=PATIENT, queue_name=LANE_QUEUE)
async def lane(context, key: int, seconds: float) -> float:
    """A nap in the async lane: its rows are written from a thread, so that
    a database blip stalls this job, not the loop its siblings share."""
    run = await asyncio.to_thread(Run, context, "lane")
    await asyncio.sleep(seconds)
    await asyncio.to_thread(run.done)
    return seconds
