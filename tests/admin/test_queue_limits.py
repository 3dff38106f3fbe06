"""The console shows and sets the limits per key, and a keyed queue's
busiest keys; the job list and page show a job's key."""

import pytest
from django.contrib.messages import get_messages

from django_jobs import queue
from django_jobs.models import Queue
from tests import key_tasks
from tests.admin.conftest import CHANGELIST, DASHBOARD

LIMITS = f"{DASHBOARD}limits/?queue=keyed"


@pytest.fixture
def keyed(db):
    queue.configure("keyed", key_concurrency=2, key_rate_limit="1000/hour")
    for customer in ["a", "a", "a", "b"]:
        key_tasks.for_customer.enqueue(customer)
    return queue.claim(worker_id="w1", limit=10)


def test_the_dashboard_shows_the_limits_per_key(admin_client, keyed):
    html = admin_client.get(DASHBOARD).content.decode()
    assert "per key: 2 at once, 1000/hour" in html
    assert "limits/?queue=keyed&amp;backend=default" in html


def test_the_limits_page_shows_the_busiest_keys(admin_client, keyed):
    response = admin_client.get(LIMITS)
    assert response.status_code == 200
    assert response.context["keys"] == [
        {"key": "a", "running": 2, "ready": 1, "used": 2},
        {"key": "b", "running": 1, "ready": 0, "used": 1},
    ]
    form = response.context["form"]
    assert form["key_concurrency"].value() == 2
    assert form["key_rate_limit"].value() == "1000/hour"


def test_the_limits_page_sets_the_limits(admin_client, keyed):
    data = {"key_concurrency": "3", "key_rate_limit": "10/minute", "rate_limit": ""}
    response = admin_client.post(LIMITS, data)
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Limits of queue keyed saved."
    ]
    row = Queue.objects.get(name="keyed")
    assert (row.key_concurrency, row.key_rate_limit, row.key_rate_period) == (3, 10, 60)
    assert row.max_concurrency is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"key_rate_limit": "1000/fortnight"}, "unknown window"),
        ({"key_concurrency": "0"}, "At least 1"),
        ({"key_concurrency": "-3"}, "greater than or equal to 0"),
        ({"rate_limit": "0"}, "more than zero"),
    ],
)
def test_bad_limits_are_refused(admin_client, keyed, data, message):
    response = admin_client.post(LIMITS, data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Queue.objects.get(name="keyed").key_concurrency == 2


def test_setting_limits_needs_change_queue(viewer_client, keyed):
    assert viewer_client.get(LIMITS).status_code == 200
    assert viewer_client.post(LIMITS, {"key_concurrency": "9"}).status_code == 403
    assert Queue.objects.get(name="keyed").key_concurrency == 2


def test_an_unknown_queue_has_no_limits_page(admin_client, db):
    assert admin_client.get(f"{DASHBOARD}limits/?queue=nosuch").status_code == 404


def test_the_job_list_and_page_show_the_key(admin_client, keyed):
    html = admin_client.get(CHANGELIST).content.decode()
    assert "key a" in html
    assert "key b" in html
    job = keyed[0]
    page = admin_client.get(f"{CHANGELIST}{job.pk}/change/").content.decode()
    assert "limit key" in page.lower()
    assert f">{job.limit_key}<" in page
