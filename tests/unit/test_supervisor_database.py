"""When the supervisor's loop next turns to its database, without processes or
a database: its objects as a turn leaves them, and the timeout it then waits."""

from __future__ import annotations

import socket

import pytest
from django.db import OperationalError, connections

from django_jobs.backend import jobs_backend
from django_jobs.models import Job
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.outage import RETRY_FIRST
from django_jobs.worker.supervisor import Supervisor

DROPPED = OperationalError("server closed the connection unexpectedly")


class BrokenConnection:
    def close(self) -> None:
        pass


@pytest.fixture
def supervisor():
    made = Supervisor(WorkerOptions(backend=jobs_backend("default")))
    for duty in made.duties:  # none due: the database alone decides
        duty.next_run = float("inf")
    yield made
    made.selector.close()
    connections["default"].connection = None


def test_after_a_dropped_connection_the_next_turn_does_not_wait(supervisor):
    supervisor.recorder.succeeded(Job(pk=1), None, 0.01)  # waits for the database
    connections["default"].connection = BrokenConnection()
    supervisor.health.failed(DROPPED, "record outcomes")
    assert supervisor.timeout() == 0  # a new connection at once
    supervisor.health.failed(DROPPED, "record outcomes")  # that failed too
    assert 0 < supervisor.timeout() <= RETRY_FIRST


class Listening:
    """A listener whose connection opens (PostgreSQL's, as the supervisor sees it)."""

    available = True

    def __init__(self) -> None:
        self.connection = None
        self.sock, self.other = socket.socketpair()

    def connect(self) -> bool:
        self.connection = object()
        return True

    def fileno(self) -> int:
        return self.sock.fileno()


def test_a_listener_that_connects_again_has_the_worker_claim(supervisor):
    """Jobs enqueued while it did not listen woke nobody: claim at once."""
    supervisor.listener = listening = Listening()
    supervisor.claimer.wake = False
    supervisor.connect_listener()
    assert supervisor.claimer.wake
    listening.sock.close()
    listening.other.close()
