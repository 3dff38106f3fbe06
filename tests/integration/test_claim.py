import threading
from datetime import timedelta

import pytest
from django.db import connections
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job


def test_claim_marks_jobs_reserved_for_their_ttr(make_job):
    job = make_job(ttr=45)
    before = timezone.now()
    (claimed,) = queue.claim(worker_id="w1")
    after = timezone.now()
    assert claimed.pk == job.pk
    assert claimed.state == "reserved"
    assert claimed.attempts == 1
    assert claimed.worker_ids == ["w1"]
    assert claimed.reserved_by == "w1"
    assert len(claimed.claim_token) == 32
    assert claimed.started_at == claimed.last_attempted_at
    assert before + timedelta(seconds=44) <= claimed.reserved_until
    assert claimed.reserved_until <= after + timedelta(seconds=46)
    stored = Job.objects.get(pk=job.pk)
    assert (stored.state, stored.claim_token) == ("reserved", claimed.claim_token)


def test_claim_order_is_priority_then_run_at_then_id(make_job):
    now = timezone.now()
    low = make_job(priority=-5)
    old = make_job(run_at=now - timedelta(minutes=5))
    first_of_two = make_job(run_at=now - timedelta(minutes=1))
    second_of_two = make_job(run_at=now - timedelta(minutes=1))
    high = make_job(priority=50)
    claimed = queue.claim(worker_id="w1", limit=10)
    assert [j.pk for j in claimed] == [
        high.pk,
        old.pk,
        first_of_two.pk,
        second_of_two.pk,
        low.pk,
    ]


def test_claim_takes_the_best_jobs_up_to_the_limit(make_job):
    jobs = [make_job(priority=p) for p in (1, 2, 3, 4)]
    claimed = queue.claim(worker_id="w1", limit=2)
    assert [j.pk for j in claimed] == [jobs[3].pk, jobs[2].pk]
    assert Job.objects.filter(state="ready").count() == 2


def test_claim_skips_delayed_reserved_done_and_buried_jobs(make_job):
    make_job(run_at=timezone.now() + timedelta(minutes=1))
    ready = make_job()
    queue.claim(worker_id="w0")
    for state in ("done", "buried"):
        Job.objects.filter(pk=make_job().pk).update(state=state)
    assert queue.claim(worker_id="w1", limit=10) == []
    assert Job.objects.get(pk=ready.pk).reserved_by == "w0"


def test_claim_filters_queues_and_backend(make_job):
    email = make_job(queue="emails")
    make_job(queue="reports")
    make_job(backend="strict")
    claimed = queue.claim(worker_id="w1", queues=["emails", "other"], limit=10)
    assert [j.pk for j in claimed] == [email.pk]
    assert len(queue.claim(worker_id="w1", limit=10)) == 1  # reports, default backend
    assert len(queue.claim(worker_id="w1", backend="strict", limit=10)) == 1


def test_claim_nothing(db):
    assert queue.claim(worker_id="w1") == []
    assert queue.claim(worker_id="w1", limit=0) == []


def test_each_claim_gets_a_new_token(make_job):
    job = make_job()
    (first,) = queue.claim(worker_id="w1")
    queue.release(job.pk, token=first.claim_token)
    (second,) = queue.claim(worker_id="w2")
    assert first.claim_token != second.claim_token
    assert second.worker_ids == ["w2"]


@pytest.mark.django_db(transaction=True)
def test_concurrent_claims_never_share_a_job():
    queue.insert([([], {})] * 200, task_path="tests.tasks.noop")
    claimed: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name):
        start.wait(timeout=10)
        mine = claimed.setdefault(name, [])
        try:
            while batch := queue.claim(worker_id=name, limit=7):
                mine.extend(job.pk for job in batch)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    every_claim = [pk for pks in claimed.values() for pk in pks]
    assert len(every_claim) == 200
    assert len(set(every_claim)) == 200
