"""Limits per key at the claim: concurrency and rate windows per key, claim
order within a key, fairness across keys, and bad input refused."""

from datetime import timedelta

import pytest
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, Queue, QueueKey
from tests import key_tasks


def claim(worker="w", limit=10, **options):
    return queue.claim(worker_id=worker, limit=limit, **options)


def keys_of(jobs):
    return sorted(job.limit_key for job in jobs)


def finish(jobs):
    for job in jobs:
        queue.complete(job.pk, token=job.claim_token)


def test_at_most_n_running_per_key_across_claims(db):
    queue.configure("keyed", key_concurrency=2)
    for customer in ["a"] * 5 + ["b"]:
        key_tasks.for_customer.enqueue(customer)
    first = claim("w1")
    assert keys_of(first) == ["a", "a", "b"]
    assert claim("w2") == []
    finish([job for job in first if job.limit_key == "a"][:1])
    assert keys_of(claim("w2")) == ["a"]
    assert claim("w3") == []


def test_integer_keys_are_text_keys(db):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.for_customer.enqueue(42)
    key_tasks.for_customer.enqueue("42")
    key_tasks.for_customer.enqueue(customer=7)
    assert keys_of(claim()) == ["42", "7"]
    assert set(Job.objects.values_list("limit_key", flat=True)) == {"42", "7"}


def test_at_most_n_starts_per_key_and_window(db, monkeypatch):
    queue.configure("keyed", key_rate_limit="2/hour")
    for customer in ["a"] * 5 + ["b"]:
        key_tasks.for_customer.enqueue(customer)
    jobs = claim()
    assert keys_of(jobs) == ["a", "a", "b"]
    finish(jobs)  # finished jobs still count in their window
    assert claim() == []
    row = QueueKey.objects.get(queue="keyed", key="a")
    assert row.window_count == 2
    assert row.held_until == row.window_start + timedelta(hours=1)
    later = row.held_until + timedelta(seconds=1)
    monkeypatch.setattr(timezone, "now", lambda: later)
    assert keys_of(claim()) == ["a", "a"]
    assert claim() == []


def test_claim_order_holds_within_a_key(db):
    queue.configure("keyed", key_concurrency=10)
    low = key_tasks.for_customer.using(priority=-5).enqueue("a", n=1)
    high = key_tasks.for_customer.using(priority=5).enqueue("a", n=2)
    plain = key_tasks.for_customer.enqueue("a", n=3)
    jobs = claim(limit=1) + claim(limit=1) + claim(limit=1)
    assert [str(job.pk) for job in jobs] == [high.id, plain.id, low.id]


def test_delayed_jobs_of_a_key_wait(db):
    queue.configure("keyed", key_concurrency=5)
    key_tasks.for_customer.using(run_after=timedelta(hours=1)).enqueue("a")
    assert claim() == []
    row = QueueKey.objects.get(queue="keyed", key="a")
    assert row.due_at == row.next_at > timezone.now()


def test_the_queue_limits_still_hold(db):
    queue.configure("keyed", max_concurrency=2, key_concurrency=5)
    for customer in "abcd":
        key_tasks.for_customer.enqueue(customer)
    assert len(claim()) == 2
    assert claim() == []


def test_jobs_without_a_key_are_claimed_too(db, caplog):
    queue.configure("keyed", key_concurrency=1)
    key_tasks.without_key.enqueue(1)
    key_tasks.without_key.enqueue(2)
    key_tasks.for_customer.enqueue("a")
    key_tasks.for_customer.enqueue("a")
    jobs = claim()
    assert keys_of(jobs) == ["", "", "a"]
    assert "holds jobs without a key" in caplog.text


def test_keyed_queues_are_limited_queues(db):
    queue.configure("keyed", key_rate_limit=(10, "minute"))
    assert queue.limited_queues() == ["keyed"]
    row = Queue.objects.get(name="keyed")
    assert (row.key_rate_limit, row.key_rate_period) == (10, 60)
    queue.configure("keyed")
    assert queue.limited_queues() == []


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        ({"key_concurrency": 0}, "key_concurrency must be a positive whole number"),
        ({"key_concurrency": -1}, "key_concurrency must be a positive whole number"),
        ({"key_rate_limit": "1000/fortnight"}, "unknown window 'fortnight'"),
        ({"key_rate_limit": "x"}, "'x' is not a rate"),
    ],
)
def test_configure_refuses_limits_that_cannot_hold(db, limits, message):
    with pytest.raises(ValueError, match=message):
        queue.configure("keyed", **limits)
    assert not Queue.objects.exists()


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (None, TypeError, "is None .NoneType.; a key must be a string or an integer"),
        ({"id": 1}, TypeError, "a key must be a string or an integer"),
        ([1], TypeError, "a key must be a string or an integer"),
        (True, TypeError, "a key must be a string or an integer"),
        (1.5, TypeError, "a key must be a string or an integer"),
        ("", ValueError, "a key must be 1 to 255 characters long"),
        ("x" * 256, ValueError, "a key must be 1 to 255 characters long"),
    ],
)
def test_enqueue_refuses_a_key_that_is_no_key(db, value, error, message):
    with pytest.raises(error, match=message) as excinfo:
        key_tasks.for_customer.enqueue(value)
    assert "limit_key argument 'customer'" in str(excinfo.value)
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("value", "message"),
    [("a\x00b", "text with a NUL character"), ("caf\udce9", "a lone surrogate")],
)
def test_a_key_no_database_can_store_is_refused_as_its_argument(db, value, message):
    with pytest.raises(TypeError, match=message) as excinfo:
        key_tasks.for_customer.enqueue(value)
    assert "args[0] cannot be stored" in str(excinfo.value)
    assert not Job.objects.exists()
    assert not QueueKey.objects.exists()


def test_a_bulk_enqueue_keys_every_call(db):
    key_tasks.for_customer.enqueue_many([(("a",), {}), ((), {"customer": "b"})])
    assert sorted(Job.objects.values_list("limit_key", flat=True)) == ["a", "b"]
    assert set(QueueKey.objects.values_list("key", flat=True)) == {"a", "b"}


@pytest.mark.parametrize("key_concurrency", [1, 8])
def test_one_busy_key_does_not_delay_the_others(db, key_concurrency):
    """One key with 10,000 ready jobs and 20 keys with one each: with 4
    workers of concurrency 2, every one of the 20 starts within the first
    2 x (4 x 2) claims."""
    workers, concurrency = 4, 2
    queue.configure("keyed", key_concurrency=key_concurrency)
    key_tasks.for_customer.enqueue_many([(("hot",), {"n": n}) for n in range(10_000)])
    for n in range(20):
        key_tasks.for_customer.enqueue(f"k{n}")
    running: dict[str, list] = {f"w{n}": [] for n in range(workers)}
    started, claims, hot = set(), 0, []
    while len(started) < 20 and claims < 100:
        for worker, jobs in running.items():
            got = claim(worker, limit=concurrency - len(jobs))
            claims += 1
            jobs += got
            started |= {job.limit_key for job in got if job.limit_key != "hot"}
            hot += [job.kwargs["n"] for job in got if job.limit_key == "hot"]
        for jobs in running.values():  # every running job ends in one tick
            finish(jobs)
            jobs.clear()
    assert len(started) == 20
    assert claims <= 2 * workers * concurrency
    assert hot == sorted(hot)  # claim order within the busy key


def test_jobs_show_names_the_key(db):
    from io import StringIO

    from django.core.management import call_command

    result = key_tasks.for_customer.enqueue("acme")
    out = StringIO()
    call_command("jobs", "show", result.id, stdout=out, stderr=StringIO())
    assert "limit key acme" in out.getvalue()
