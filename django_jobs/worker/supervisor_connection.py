"""How the supervisor uses its database connection.

On PostgreSQL the claim must walk the claim index in order and stop after a
few rows. Right after a bulk enqueue, before autovacuum has analysed the
table, the planner can believe there are only a handful of ready rows and
choose a bitmap scan and a sort of all of them instead: a claim then costs
milliseconds per thousand ready jobs, exactly when the backlog is largest.
Every query the supervisor runs is meant to use an index, so its own
connection (and only it: not the children's, not the web's) disables the
plans that do not.

That makes a scan of a small table that has no index for the query (the
worker rows a wake-up looks through) cost, to the planner, more than any
real plan: enough for PostgreSQL to compile it with JIT, 100 ms of CPU for
a query that takes 0.05 ms. The supervisor's statements are all short, so
JIT is off on its connection too. And it prepares the claim and the
completion, which it runs over and over, once each, and runs them with the
plan made once for any parameters (``plan_cache_mode``): left to choose,
PostgreSQL plans the completion of several jobs anew at every run (its
generic plan looks dearer than one made for the values at hand, since it
cannot know that each id names one row), which cost ten times the run.
The generic plans are those the tests check (they walk the indexes).

Both last as long as the worker: when it stops, the receiver goes and the
connection that carries the settings is closed, as is the connect timeout
the worker gave its database (the process may go on: a test suite, a
script that ran the worker in it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.core.management.base import CommandError
from django.db import DatabaseError, connections
from django.db.backends.signals import connection_created

from .outage import first_line

PLANNER_SETTINGS = (
    "SET enable_bitmapscan = off",
    "SET enable_seqscan = off",
    "SET jit = off",
    "SET plan_cache_mode = force_generic_plan",
)
PLANNER_RECEIVER = "django_jobs_planner"
#: psycopg's ``prepare_threshold`` on the supervisor's connection, which
#: Django opens with None (nothing is prepared, even when asked): so high
#: that psycopg prepares only the statements the queue asks it to (the
#: claim, the completion), each once per connection, as the worker is
#: meant to. The supervisor's connection is always a session of its own
#: (it LISTENs): never a transaction pooler's, which could not keep them.
ONLY_WHEN_ASKED = 2**31 - 1


def configure_supervisor_connection(db: str) -> None:
    """Apply the planner settings to ``db``'s connections in this process,
    once the fork server (which must not inherit them) is forked."""

    def configure(sender, connection, **kwargs) -> None:
        if connection.alias == db and connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                for statement in PLANNER_SETTINGS:
                    cursor.execute(statement)
            if connection.connection.prepare_threshold is None:
                connection.connection.prepare_threshold = ONLY_WHEN_ASKED

    connection_created.connect(configure, weak=False, dispatch_uid=PLANNER_RECEIVER)
    connection = connections[db]
    if connection.connection is not None:
        configure(None, connection)


@contextlib.contextmanager
def supervisor_connection(db: str) -> Iterator[None]:
    """The planner settings on ``db``'s connections in this process while the
    worker runs; none after (the connection that has them is closed)."""
    configure_supervisor_connection(db)
    try:
        yield
    finally:
        connection_created.disconnect(dispatch_uid=PLANNER_RECEIVER)
        connections[db].close()


#: Seconds a worker waits for a PostgreSQL or MariaDB/MySQL connection
#: (unless OPTIONS say): libpq waits for ever, and a supervisor stuck
#: connecting keeps nobody's deadlines.
CONNECT_TIMEOUT = 10


@contextlib.contextmanager
def connect_timeout(db: str) -> Iterator[None]:
    """A connect timeout on ``db`` (PostgreSQL, MariaDB/MySQL: both drivers
    take ``connect_timeout``; unless its OPTIONS set one) while the worker runs."""
    options = connections[db].settings_dict.setdefault("OPTIONS", {})
    vendor = connections[db].vendor
    if vendor not in ("postgresql", "mysql") or "connect_timeout" in options:
        yield
        return
    options["connect_timeout"] = CONNECT_TIMEOUT
    try:
        yield
    finally:
        options.pop("connect_timeout", None)


def describe_database(db: str) -> str:
    """Where ``db`` is, in a few words, for the logs and for error messages."""
    settings = connections[db].settings_dict
    if connections[db].vendor == "sqlite":
        return f"sqlite {settings['NAME']}"
    host = settings.get("HOST") or "local socket"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"{connections[db].vendor} {host}{port}/{settings.get('NAME')}"


def check_database(db: str) -> None:
    """Refuse to start, in one line, without a database or its tables.

    A worker started before ``migrate``, or with the database down, would
    otherwise fail on its first statement with a long traceback.
    """
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[db]
    try:
        connection.ensure_connection()
        executor = MigrationExecutor(connection)
        targets = executor.loader.graph.leaf_nodes("django_jobs")
        plan = executor.migration_plan(targets)
    except DatabaseError as exc:
        raise CommandError(
            f"cannot reach database {db!r} ({describe_database(db)}): {first_line(exc)}"
        ) from None
    missing = [
        migration for migration, _ in plan if migration.app_label == "django_jobs"
    ]
    if missing:
        raise CommandError(
            f"database {db!r} ({describe_database(db)}) lacks {len(missing)} "
            "django_jobs migration(s): run `python manage.py migrate` first."
        )


def connection_pid(db: str) -> str:
    """The server process of the supervisor's connection, for the logs."""
    connection = connections[db]
    if connection.connection is None:
        return ""
    if connection.vendor == "mysql":  # the server's thread (SHOW PROCESSLIST)
        return f", database connection id {connection.connection.thread_id()}"
    if connection.vendor != "postgresql":
        return ""
    return f", database connection pid {connection.connection.info.backend_pid}"
