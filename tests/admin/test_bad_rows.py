"""The console shows rows written by hand, whatever they hold: no 500."""

import pytest
from django.db import connection

from django_jobs import queue
from django_jobs.models import Job
from tests.admin.conftest import CHANGELIST, DASHBOARD
from tests.integration.conftest import write_by_hand


@pytest.fixture
def bad_rows(db):
    jobs = [queue.enqueue(task_path="tests.tasks.noop") for _ in range(4)]
    if connection.vendor == "mysql":
        with connection.cursor() as cursor:  # what an operator could do
            cursor.execute("SET SESSION sql_mode = 'ALLOW_INVALID_DATES'")
            cursor.execute("SET SESSION check_constraint_checks = 0")
            try:
                write_by_hand(jobs[0].pk, "run_at", "0000-00-00")
                write_by_hand(jobs[1].pk, "run_at", "2024-02-30 10:00:00")
                write_by_hand(jobs[1].pk, "enqueued_at", "0000-01-01")
                write_by_hand(jobs[2].pk, "args", "[" * 1500 + "]" * 1500)
            finally:
                cursor.execute("SET SESSION sql_mode = DEFAULT")
                cursor.execute("SET SESSION check_constraint_checks = 1")
    else:
        write_by_hand(jobs[0].pk, "run_at", "-infinity")
        write_by_hand(jobs[1].pk, "run_at", "infinity")
        write_by_hand(jobs[1].pk, "enqueued_at", "infinity")
        write_by_hand(jobs[2].pk, "args", "[" * 1500 + "]" * 1500)
    write_by_hand(jobs[3].pk, "errors", '{"not": "a list"}')
    return jobs


def test_the_job_list_and_filters_show_bad_rows(admin_client, bad_rows):
    for query in ("", "?state=ready", "?state=delayed", "?q=noop"):
        response = admin_client.get(CHANGELIST + query)
        assert response.status_code == 200, query


def test_the_job_page_shows_a_bad_row(admin_client, bad_rows):
    for job in bad_rows:
        response = admin_client.get(f"{CHANGELIST}{job.pk}/change/")
        assert response.status_code == 200, job.pk
    page = admin_client.get(f"{CHANGELIST}{bad_rows[2].pk}/change/").content.decode()
    assert "unreadable: RecursionError" in page


def test_the_dashboard_counts_bad_rows(admin_client, bad_rows):
    assert admin_client.get(DASHBOARD).status_code == 200
    assert Job.objects.count() == 4
