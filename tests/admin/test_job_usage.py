"""A job's page shows each attempt's peak memory, CPU and wall time, and its limits."""

from django_jobs import queue
from django_jobs.models import Job
from tests import tasks

from .conftest import CHANGELIST


def test_the_page_shows_usage_per_attempt_and_the_limits(admin_client, db):
    result = tasks.add.using(max_memory="1GiB").enqueue(1, 2)
    (claimed,) = queue.claim(worker_id="w", limit=1)
    used = {"attempt": 1, "max_rss": 612_000_000, "cpu": 31.2, "wall": 40.0}
    queue.complete_returning([(claimed.pk, claimed.claim_token, 3, used)])
    html = admin_client.get(f"{CHANGELIST}{result.id}/change/").content.decode()
    assert '<table class="jobs-usage">' in html
    assert "<td>612 MB</td><td>31.20 s</td><td>40.00 s</td>" in html
    assert "memory 1.07 GB" in html


def test_a_job_without_usage_has_no_usage_section(admin_client, db):
    job = queue.enqueue(task_path="tests.tasks.add")
    html = admin_client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert "jobs-usage" not in html
    assert "none of its own" in html
    assert Job.objects.get(pk=job.pk).usage == []
