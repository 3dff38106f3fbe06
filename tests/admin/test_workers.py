"""The worker list: host, pid, status, queues, jobs in hand of its slots, times."""

from datetime import timedelta

from django.utils import timezone

from django_jobs.models import Lease, Worker
from tests.fleet_rows import autoscaling_worker

from .conftest import WORKERS


def test_the_list_flags_stale_workers(admin_client, worker):
    Worker.objects.create(
        id="w2",
        hostname="host-2",
        pid=99,
        concurrency=8,
        jobs_in_hand=3,
        last_heartbeat=timezone.now() - timedelta(seconds=10),  # timeout is 3 s
    )
    response = admin_client.get(WORKERS)
    assert response.status_code == 200
    html = response.content.decode()
    for shown in ("host-1", "4242", "default", "host-2", ">all<"):
        assert shown in html
    assert html.count('jobs-state-stale" title="silent past WORKER_TIMEOUT') == 1
    assert html.count('jobs-state-live" title="sending heartbeats">live<') == 1
    assert "?state=reserved&amp;reserved_by=w2" in html
    assert ">3</a> / 8" in html  # jobs in hand, of its slots
    assert "10 s ago" in html
    assert '<span title="w2">host-2</span>' in html  # the long id on hover


def test_the_list_shows_an_autoscaling_worker_s_size_and_range(admin_client, worker):
    autoscaling_worker(jobs_in_hand=5)
    html = admin_client.get(WORKERS).content.decode()
    assert ">5</a> / 6" in html  # jobs in hand, of its current size
    assert html.count(">min 2, max 16<") == 1  # not under the fixed worker
    page = admin_client.get(f"{WORKERS}w3/change/").content.decode()
    for label in ("min concurrency", "max concurrency", "database connections"):
        assert label in page.lower()


def test_the_list_names_the_worker_that_runs_the_fleets_duties(admin_client, worker):
    Worker.objects.create(id="w2", hostname="host-2", pid=99, concurrency=1)
    lease = Lease.objects.create(
        name="default", holder="w1", expires_at=timezone.now() + timedelta(seconds=9)
    )
    html = admin_client.get(WORKERS).content.decode()
    assert html.count(">runs the duties<") == 1
    rows = html.index('title="w1">host-1'), html.index('title="w2">host-2')
    assert rows[0] < html.index(">runs the duties<") < rows[1]
    lease.expires_at = timezone.now() - timedelta(seconds=1)  # w1 stopped renewing
    lease.save()
    assert ">runs the duties<" not in admin_client.get(WORKERS).content.decode()


def test_a_worker_page_is_read_only(admin_client, worker):
    response = admin_client.get(f"{WORKERS}w1/change/")
    assert response.status_code == 200
    assert 'name="_save"' not in response.content.decode()
    assert admin_client.get(f"{WORKERS}add/").status_code == 403
    assert admin_client.post(f"{WORKERS}w1/delete/", {"post": "yes"}).status_code == (
        403
    )
    assert Worker.objects.filter(pk="w1").exists()


def test_workers_need_their_view_permission(operator_client, viewer_client, worker):
    assert operator_client.get(WORKERS).status_code == 200
    assert viewer_client.get(WORKERS).status_code == 403
