import pytest

from django_jobs import queue


@pytest.fixture
def make_job(db):
    """Write a ready job for ``tests.tasks.noop`` (or whatever fields say)."""

    def make(**fields):
        fields.setdefault("task_path", "tests.tasks.noop")
        return queue.enqueue(**fields)

    return make


@pytest.fixture
def claimed(make_job):
    """A job claimed by worker 'w1' (ahead of any ready job already there)."""

    def claim(**fields):
        fields.setdefault("priority", 100)
        job = make_job(**fields)
        (claimed_job,) = queue.claim(worker_id="w1", limit=1, queues=[job.queue])
        assert claimed_job.pk == job.pk
        return claimed_job

    return claim
