"""The job list and the dashboard cost the same number of queries at any size."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_jobs import queue

from .conftest import CHANGELIST, DASHBOARD


def fill(jobs: int, queues: int) -> None:
    for i in range(queues):
        calls = [([], {})] * (jobs // queues)
        inserted = queue.insert(calls, task_path=f"tests.tasks.t{i}", queue=f"q{i}")
        claimed = queue.claim(worker_id="w", queues=[f"q{i}"], limit=2)
        queue.complete(claimed[0].pk, token=claimed[0].claim_token)
        queue.bury(inserted.ids[-1])


def queries(client, url: str) -> int:
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


def test_the_job_list_and_the_dashboard_use_a_bounded_number_of_queries(
    admin_client, db
):
    fill(jobs=6, queues=2)
    small = {url: queries(admin_client, url) for url in (CHANGELIST, DASHBOARD)}
    fill(jobs=400, queues=20)
    large = {url: queries(admin_client, url) for url in (CHANGELIST, DASHBOARD)}
    assert large == small
    assert small[CHANGELIST] <= 10
    assert small[DASHBOARD] <= 8


def test_filtered_lists_use_a_bounded_number_of_queries(admin_client, db):
    fill(jobs=400, queues=20)
    for query in ("state=buried", "queue=q3", "failed=no", "q=t1"):
        assert queries(admin_client, f"{CHANGELIST}?{query}") <= 10
