"""Limits on MariaDB and MySQL: the key triggers exist there too, and a
deadlock in a limited queue's claim is run again, never the caller's."""

import importlib
from datetime import timedelta

import pytest
from django.db import OperationalError, connection
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import QueueKey
from django_jobs.queue import mysql
from tests import key_tasks

# The module, not the function ``django_jobs.queue.claim`` that shadows it.
claims = importlib.import_module("django_jobs.queue.claim")

pytestmark = pytest.mark.skipif(
    connection.vendor != "mysql", reason="MariaDB's and MySQL's own paths"
)


def test_the_key_triggers_exist(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT trigger_name, action_timing, event_manipulation"
            " FROM information_schema.triggers WHERE trigger_schema = DATABASE()"
            " AND event_object_table = 'django_jobs_job' ORDER BY action_order"
        )
        found = {name: (timing, event) for name, timing, event in cursor.fetchall()}
    assert found["django_jobs_key_insert"] == ("AFTER", "INSERT")
    assert found["django_jobs_key_update"] == ("AFTER", "UPDATE")
    assert found["django_jobs_key_freed"] == ("AFTER", "UPDATE")


def test_an_enqueue_of_an_earlier_job_moves_the_turn_forward(db):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.for_customer.using(run_after=_later(60)).enqueue("a")
    later = QueueKey.objects.get(key="a").next_at
    key_tasks.for_customer.enqueue("a")
    row = QueueKey.objects.get(key="a")
    assert row.next_at < later
    assert row.due_at == row.next_at


def test_a_deadlock_in_a_limited_claim_is_run_again(transactional_db, monkeypatch):
    queue.configure("keyed", key_concurrency=2)
    key_tasks.for_customer.enqueue("a")
    real, calls = claims.lock_queue, []

    def deadlocking(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise OperationalError(mysql.DEADLOCK, "Deadlock found")
        return real(*args, **kwargs)

    monkeypatch.setattr(claims, "lock_queue", deadlocking)
    before = mysql.deadlocks_retried
    jobs = claims.claim(worker_id="w1", queues=["keyed"])
    assert [job.limit_key for job in jobs] == ["a"]
    assert len(calls) == 2
    assert mysql.deadlocks_retried == before + 1


def _later(seconds):
    return timezone.now() + timedelta(seconds=seconds)
