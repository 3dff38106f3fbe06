"""A worker whose LISTEN session has ended takes no wake-ups (PostgreSQL).

Each worker's listener session holds an advisory lock keyed by its server
pid, which it records in its row (``listener_pid``); ``django_jobs_wake``
(migration 0011) passes over a worker whose lock nobody holds: its session
has ended. Here the sessions are real connections, opened and closed by the
test; the rows are fresh (heartbeats play no part).
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection, transaction

from django_jobs import queue
from django_jobs.models import Worker
from django_jobs.queue.wake import LISTENER_LOCK
from django_jobs.worker.listener import Listener
from tests import tasks
from tests.listener_sessions import Ears, Session, wait_ended

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]


@pytest.fixture
def sessions():
    """Sessions for the test, closed at its end."""
    opened: list[Session] = []

    def open_one() -> Session:
        opened.append(Session())
        return opened[-1]

    yield open_one
    for session in opened:
        session.connection.close()


@pytest.fixture
def ears():
    """Ears on workers' channels for the test, closed at its end."""
    opened: list[Ears] = []

    def listen(*workers: str) -> Ears:
        opened.append(Ears(*workers))
        return opened[-1]

    yield listen
    for listening in opened:
        listening.close()


def worker_row(name: str, room: int) -> None:
    Worker.objects.create(id=name, hostname="h", pid=1, concurrency=4, room=room)


def test_a_worker_whose_listener_session_ended_gets_no_wake_ups(sessions, ears):
    worker_row("live", 1)
    worker_row("gone", 4)  # more room: it would be picked first most often
    sessions().recorded_by("live")
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()  # the worker died: the kernel closed its socket
    heard = ears("live", "gone")

    for number in range(10):  # one statement each: each wakes one worker
        tasks.add.enqueue(number, 1)

    assert heard.heard(expected=10) == ["live"] * 10
    assert heard.heard(wait=0.3) == []


def test_a_session_that_ended_is_not_counted_among_those_woken(sessions):
    worker_row("live", 2)
    worker_row("gone", 2)
    sessions().recorded_by("live")
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()

    with connection.cursor() as cursor:
        cursor.execute("SELECT django_jobs_wake('default', 'default', 3)")
        assert cursor.fetchone()[0] == 1  # the live one; the rest waits


def test_a_pid_the_server_gave_to_another_session_is_not_the_workers(sessions, ears):
    worker_row("live", 1)
    worker_row("reused", 4)
    sessions().recorded_by("live")
    other = sessions()  # alive, with the pid the row names, but no listener
    other.recorded_by("reused", lock=False)
    heard = ears("live", "reused")

    for number in range(10):
        tasks.add.enqueue(number, 1)

    assert heard.heard(expected=10) == ["live"] * 10


def test_a_dead_workers_row_holds_nobody_up(sessions):
    """The try on an ended session's key takes it until the enqueue commits:
    a new session that gets that key then (the same pid) records no pid,
    and is woken as a worker without one is."""
    worker_row("gone", 1)
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()
    with transaction.atomic():
        tasks.add.enqueue(1, 1)  # tried the dead worker's key, and holds it
        other = sessions()
        taken = other.connection.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", [LISTENER_LOCK, dead.pid]
        ).fetchone()[0]
    assert not taken  # not waited for: the listener's try fails at once
    assert other.connection.execute(
        "SELECT pg_try_advisory_lock(%s, %s)", [LISTENER_LOCK, dead.pid]
    ).fetchone() == (True,)  # free again once the enqueue committed


@pytest.fixture
def plain_role():
    """A role that is neither superuser nor a member of any other."""
    name = f"django_jobs_probe_{uuid.uuid4().hex[:8]}"
    with connection.cursor() as cursor:
        cursor.execute(f"CREATE ROLE {name}")
        cursor.execute(f"GRANT SELECT ON django_jobs_worker TO {name}")
    yield name
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")
        cursor.execute(f"REVOKE ALL ON django_jobs_worker FROM {name}")
        cursor.execute(f"DROP ROLE {name}")


def test_a_plain_role_tells_the_ended_session_from_the_live_one(
    sessions, plain_role, ears
):
    worker_row("gone", 1)
    worker_row("live", 1)
    dead = sessions()
    dead.recorded_by("gone")
    dead.end()
    sessions().recorded_by("live")  # another role's session (the test's)
    heard = ears("gone", "live")

    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {plain_role}")
        cursor.execute("SELECT django_jobs_wake('default', 'default', 2)")
        woken = cursor.fetchone()[0]
        cursor.execute("RESET ROLE")

    assert (woken, heard.heard(expected=1)) == (1, ["live"])


def holds_its_lock(listener: Listener) -> bool:
    """Whether the listener's session holds its lock (as pg_locks says)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = %(key)s::oid AND objid = %(pid)s::oid AND objsubid = 2"
            " AND pid = %(pid)s AND mode = 'ExclusiveLock' AND granted)",
            {"key": LISTENER_LOCK, "pid": listener.connection.info.backend_pid},
        )
        return cursor.fetchone()[0]


def test_the_listener_records_its_session_in_its_workers_row():
    worker_row("w", 1)
    worker_row("neighbour", 1)
    listener = Listener("default", queue.channel("w"))
    try:
        assert listener.connect()
        pid = listener.connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        assert Worker.objects.get(pk="w").listener_pid == pid
        assert holds_its_lock(listener)
        assert Worker.objects.get(pk="neighbour").listener_pid is None
    finally:
        listener.close()


def session_of(name: str) -> int | None:
    return Worker.objects.get(pk=name).listener_pid


def test_a_worker_whose_listener_broke_is_woken_again_once_it_listens(ears):
    worker_row("w", 1)
    listener = Listener("default", queue.channel("w"))
    heard = ears("w")
    try:
        assert listener.connect()
        first = session_of("w")
        listener.close()  # as when its connection breaks
        wait_ended(first)
        tasks.add.enqueue(1, 1)
        assert heard.heard() == []  # it could not have heard it: not sent

        assert listener.connect()  # its next try
        assert session_of("w") != first
        tasks.add.enqueue(2, 1)
        assert heard.heard(expected=1) == ["w"]
    finally:
        listener.close()
