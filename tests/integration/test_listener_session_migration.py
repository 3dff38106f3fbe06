"""Migration 0011 (the listener's session in the worker's row) forwards and
backwards: the columns come and go, and on PostgreSQL ``django_jobs_wake``
works at each end (0010's function restored, which reads no listener_pid)."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from tests.listener_sessions import wait_ended

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = ("django_jobs", "0010_fleet")
COLUMNS = {"listener_pid"}


def migrate(targets) -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(targets)


def latest() -> list[tuple[str, str]]:
    return MigrationExecutor(connection).loader.graph.leaf_nodes("django_jobs")


def worker_columns() -> set[str]:
    with connection.cursor() as cursor:
        description = connection.introspection.get_table_description(
            cursor, "django_jobs_worker"
        )
    return {column.name for column in description}


def add_worker(name: str) -> None:
    """A worker row with room, written by hand (the model has the new columns)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO django_jobs_worker (id, backend, hostname, pid, queues,"
            " concurrency, jobs_in_hand, room, started_at, last_heartbeat)"
            " VALUES (%s, 'default', 'h', 1, '[]', 1, 0, 1, now(), now())",
            [name],
        )


def ended() -> int:
    """The server pid of a session that has ended."""
    with psycopg.connect(**connection.get_connection_params()) as session:
        pid = session.info.backend_pid
    wait_ended(pid)
    return pid


def wakes() -> int:
    """How many workers one new job of the default queue wakes."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT django_jobs_wake('default', 'default', 1)")
        return cursor.fetchone()[0]


def test_0011_adds_the_listener_columns_and_gives_them_back():
    assert worker_columns() >= COLUMNS
    migrate([BEFORE])
    try:
        assert not COLUMNS & worker_columns()
    finally:
        migrate(latest())
    assert worker_columns() >= COLUMNS


@pytest.mark.postgres
def test_0011s_wake_function_and_0010s_restored_both_wake_a_worker_with_room():
    migrate([BEFORE])
    try:
        add_worker("before")
        assert wakes() == 1  # 0010's function, back: it reads no listener_pid
    finally:
        migrate(latest())
    with connection.cursor() as cursor:
        cursor.execute("UPDATE django_jobs_worker SET listener_pid = %s", [ended()])
    assert wakes() == 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE django_jobs_worker SET listener_pid = NULL")
    assert wakes() == 1  # no session recorded: as before
