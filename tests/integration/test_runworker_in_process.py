"""``runworker`` run inside another process (``call_command``, as test suites and
scripts do) leaves that process as it found it: its signal handlers, its alarm,
its signal wake-up descriptor, its database connections' settings, its logging."""

from __future__ import annotations

import logging
import os
import signal

import pytest
from django.core.management import call_command
from django.db import connection, connections
from django.db.backends.signals import connection_created
from django.test.utils import CaptureQueriesContext

from django_jobs import queue
from django_jobs.compat import TASKS_MODULE
from django_jobs.logging import TOUCHED_LOGGERS
from django_jobs.models import Job
from tests import tasks

pytestmark = pytest.mark.django_db(transaction=True)

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGALRM)


def wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def descriptors(kind: str) -> int:
    """How many of this process's file descriptors are ``kind`` (socket, ...)."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            count += kind in os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
    return count


def host() -> dict:
    """What a worker run in this process could leave changed."""
    connections.close_all()
    return {
        "handlers": {signum: signal.getsignal(signum) for signum in SIGNALS},
        "wakeup fd": wakeup_fd(),
        "receivers": len(connection_created.receivers),
        "OPTIONS": dict(connection.settings_dict["OPTIONS"]),
        "sockets": descriptors("socket:"),
        "epoll": descriptors("eventpoll"),
    }


@pytest.fixture
def alarm():
    """A SIGALRM handler and a timer of the test's own (as pytest-timeout sets)."""
    rang = []
    saved = signal.getsignal(signal.SIGALRM), signal.getitimer(signal.ITIMER_REAL)
    signal.signal(signal.SIGALRM, lambda signum, frame: rang.append(signum))
    signal.setitimer(signal.ITIMER_REAL, 600)
    yield rang
    signal.setitimer(signal.ITIMER_REAL, *saved[1])
    signal.signal(signal.SIGALRM, saved[0])


def run_worker() -> None:
    result = tasks.add.enqueue(1, 2)
    call_command("runworker", "--burst", "--concurrency", "1")
    assert Job.objects.get(pk=result.id).state == "done"


def test_the_worker_gives_back_signals_alarm_receivers_and_settings(alarm):
    before = host()
    run_worker()
    assert host() == before
    left, _ = signal.getitimer(signal.ITIMER_REAL)
    assert 0 < left <= 600  # still armed, as the test set it
    assert alarm == []  # and its alarm did not go off


@pytest.mark.postgres
def test_a_connection_opened_after_the_worker_stopped_has_no_worker_settings():
    run_worker()
    connection.close()
    with CaptureQueriesContext(connection) as queries:
        tasks.add.enqueue(1, 2)
    statements = [query["sql"] for query in queries]
    assert not [sql for sql in statements if sql.startswith("SET ")], statements
    with connection.cursor() as cursor:
        for setting in ("enable_seqscan", "enable_bitmapscan"):
            cursor.execute(f"SHOW {setting}")
            assert cursor.fetchone() == ("on",)
        cursor.execute("SHOW plan_cache_mode")
        assert cursor.fetchone() == ("auto",)
    assert connection.connection.prepare_threshold is None  # Django's own


@pytest.mark.postgres
def test_the_supervisor_prepares_its_claim_and_completion_with_generic_plans():
    from django_jobs.worker.supervisor_connection import supervisor_connection

    for number in range(8):
        tasks.add.enqueue(number, 1)
    with supervisor_connection("default"):
        connection.ensure_connection()
        for _ in range(8):
            (job,) = queue.claim(worker_id="w", limit=1, prepare=True, limited=())
            queue.complete_returning([(job.pk, job.claim_token, 1)], prepare=True)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT statement, generic_plans, custom_plans"
                " FROM pg_prepared_statements"
            )
            prepared = cursor.fetchall()
        with CaptureQueriesContext(connection):  # an ordinary query: not prepared
            Job.objects.filter(state="done").count()
            Job.objects.filter(state="done").count()
    plans = {
        ("claim" if "candidates" in sql else "completion"): (generic, custom)
        for sql, generic, custom in prepared
    }
    assert plans == {"claim": (8, 0), "completion": (8, 0)}, prepared


def logging_state() -> dict:
    state = {}
    for name in TOUCHED_LOGGERS:
        logger = logging.getLogger(name)
        state[name] = (
            logger.level,
            logger.propagate,
            [(handler, handler.formatter) for handler in logger.handlers],
        )
    return state


@pytest.mark.parametrize("json_logs", [False, True])
def test_the_worker_gives_back_the_logging_of_a_project_without_logging(
    monkeypatch, json_logs
):
    """A project with no LOGGING for django_jobs: the worker logs to stderr
    on its own while it runs, and takes its handler, levels and formatters
    away again (a test suite's later output stays its own)."""
    for name in ("django_jobs", TASKS_MODULE):
        monkeypatch.setattr(logging.getLogger(name), "handlers", [])
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
        monkeypatch.setattr(logging.getLogger(name), "propagate", True)
    before = logging_state()
    result = tasks.add.enqueue(1, 2)
    options = ["--json-logs"] if json_logs else []
    call_command("runworker", "--burst", "--concurrency", "1", *options)
    assert Job.objects.get(pk=result.id).state == "done"
    assert logging_state() == before
