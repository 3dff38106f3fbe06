"""The console past the cap: estimates marked on the dashboard, the job
list's count stopping at ``counting.CAP``, done jobs listed by finish time."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from django_jobs import counting, estimates, queue
from django_jobs.models import Job

from .conftest import CHANGELIST, DASHBOARD


def fill() -> None:
    queue.insert([([], {})] * 5, task_path="tests.tasks.noop", queue="emails")
    buried = queue.enqueue(task_path="tests.tasks.noop", queue="reports")
    queue.bury(buried.pk)


def test_the_dashboard_marks_no_count_below_the_cap(admin_client, db):
    fill()
    html = admin_client.get(DASHBOARD).content.decode()
    assert "≈" not in html
    assert 'id="estimated"' not in html


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL estimates")
def test_the_dashboard_marks_the_estimates(admin_client, db, monkeypatch):
    monkeypatch.setattr(counting, "CAP", 3)
    monkeypatch.setattr(estimates, "SAMPLE_PAGES", 10**9)
    fill()
    response = admin_client.get(DASHBOARD)
    html = response.content.decode()
    assert 'class="jobs-estimated"' in html
    assert "≈&nbsp;5</span>" in html  # emails' ready jobs
    assert "≈ estimated: more than 3 jobs are in that state" in html
    assert response.context["totals"]["buried"] == 1  # under the cap: a count


def test_the_job_list_counts_up_to_the_cap(admin_client, db, monkeypatch):
    monkeypatch.setattr(counting, "CAP", 3)
    fill()
    response = admin_client.get(CHANGELIST, {"state": "ready"})
    assert "more than 3 jobs" in response.content.decode()
    assert response.context["cl"].paginator.count == 4


def test_done_jobs_are_listed_by_finish_time(admin_client, db):
    first, second = queue.insert([([], {})] * 2, task_path="tests.tasks.noop").ids
    for job in queue.claim(worker_id="w", limit=2):
        queue.complete(job.pk, token=job.claim_token)
    now = timezone.now()
    # The older job finished last.
    Job.objects.filter(pk=first).update(finished_at=now)
    Job.objects.filter(pk=second).update(finished_at=now - timedelta(minutes=1))
    newest = admin_client.get(CHANGELIST, {"state": "done"}).context["cl"]
    assert [job.pk for job in newest.result_list] == [first, second]
    oldest = admin_client.get(CHANGELIST, {"state": "done", "o": "1"}).context["cl"]
    assert [job.pk for job in oldest.result_list] == [second, first]
