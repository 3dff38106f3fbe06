"""Guarantee 1: a job is written in the caller's transaction."""

import threading

import pytest
from django.db import connection, connections, transaction

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks


def count_from_another_connection() -> int:
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute(f"SELECT COUNT(*) FROM {Job._meta.db_table}")
            return cursor.fetchone()[0]
    finally:
        other.close()


class Rollback(Exception):
    pass


@pytest.mark.django_db(transaction=True)
def test_rollback_leaves_no_job():
    def enqueue_then_fail():
        with transaction.atomic():
            tasks.add.enqueue(1, 2)
            assert Job.objects.count() == 1
            raise Rollback

    with pytest.raises(Rollback):
        enqueue_then_fail()
    assert Job.objects.count() == 0
    assert count_from_another_connection() == 0


@pytest.mark.django_db(transaction=True)
def test_another_connection_sees_the_job_only_after_commit():
    with transaction.atomic():
        tasks.add.enqueue(1, 2)
        assert count_from_another_connection() == 0
    assert count_from_another_connection() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_worker_cannot_claim_an_uncommitted_job():
    claimed = []

    def claim_in_another_thread():
        claimed.extend(queue.claim(worker_id="elsewhere", limit=10))
        connections.close_all()

    with transaction.atomic():
        tasks.add.enqueue(1, 2)
        thread = threading.Thread(target=claim_in_another_thread)
        thread.start()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert claimed == []
    assert len(queue.claim(worker_id="here")) == 1


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueue_rolls_back_as_a_whole():
    def enqueue_then_fail():
        with transaction.atomic():
            tasks.add.enqueue_many([((i, i), {}) for i in range(10)])
            raise Rollback

    with pytest.raises(Rollback):
        enqueue_then_fail()
    assert count_from_another_connection() == 0
    assert connection.in_atomic_block is False
