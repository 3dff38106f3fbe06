import pytest
from django.db import DatabaseError, connection

from django_jobs import queue
from django_jobs.models import Job


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


def write_by_hand(job_id: int, column: str, text: str) -> None:
    """Store ``text`` in a job's column with plain SQL, as an operator might:
    no model field, no validation (a time or JSON, cast on PostgreSQL)."""
    field = Job._meta.get_field(column)
    cast = ""
    if connection.vendor == "postgresql":
        cast = "::jsonb" if field.get_internal_type() == "JSONField" else ""
        cast = "::timestamptz" if field.get_internal_type() == "DateTimeField" else cast
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE django_jobs_job SET {field.column} = %s{cast} WHERE id = %s",
                [text, job_id],
            )
    except DatabaseError as exc:
        if connection.vendor != "mysql":
            raise
        # MariaDB checks what it stores (JSON no deeper than 32, real dates
        # in strict mode): such a row cannot exist there.
        pytest.skip(f"MariaDB refuses {column} = {text[:30]!r}: {exc}")
