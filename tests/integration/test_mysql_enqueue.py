"""Enqueues whose ids come from the server's counter (MariaDB and MySQL).

On these servers an INSERT returns no rows: the ids of a bulk enqueue are
the statement's first id and those after it (queue.mysql.insert). These
tests hold that to the rows written, also while other connections insert,
and that a unique job met twice in one call is written once.
"""

import threading

import pytest
from django.db import connection, connections

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks


def test_each_id_of_a_bulk_enqueue_is_its_own_jobs(db):
    results = tasks.add.enqueue_many([((i,), {"b": -i}) for i in range(300)])
    rows = dict(
        Job.objects.filter(pk__in=[r.id for r in results]).values_list("pk", "args")
    )
    assert [rows[int(r.id)] for r in results] == [[i] for i in range(300)]


@pytest.mark.django_db(transaction=True)
def test_bulk_enqueues_racing_each_get_their_own_ids():
    if connection.vendor == "sqlite":
        pytest.skip("SQLite writes one transaction at a time: nothing races")
    failures: list[BaseException] = []

    def enqueue(offset: int) -> None:
        try:
            for round_ in range(5):
                base = offset * 1000 + round_ * 100
                inserted = queue.insert(
                    [([base + i], {}) for i in range(100)],
                    task_path="tests.tasks.add",
                    queue="default",
                    backend="default",
                )
                rows = dict(
                    Job.objects.filter(pk__in=inserted.ids).values_list("pk", "args")
                )
                assert [rows[pk] for pk in inserted.ids] == [
                    [base + i] for i in range(100)
                ]
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    assert not failures, failures
    assert Job.objects.count() == 2000


def test_a_unique_job_twice_in_one_call_is_written_once(db):
    inserted = queue.insert(
        [([1], {}), ([2], {}), ([3], {})],
        task_path="tests.tasks.add",
        queue="default",
        backend="default",
        unique_keys=["k", "k", "other"],
    )
    assert inserted.ids[0] == inserted.ids[1] != inserted.ids[2]
    assert Job.objects.filter(unique_key="k").count() == 1
