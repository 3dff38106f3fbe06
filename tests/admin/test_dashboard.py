"""The queue dashboard: counts per queue, the last hour's chart, pause/resume."""

from datetime import timedelta

from django.contrib.messages import get_messages
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Job, Queue

from .conftest import DASHBOARD, claim, make


def rows(response) -> dict[str, object]:
    return {(row.backend, row.name): row for row in response.context["rows"]}


def test_counts_per_queue(admin_client, jobs):
    old = make(queue="emails")
    claimed = claim(old)
    queue.complete(claimed.pk, token=claimed.claim_token)
    Job.objects.filter(pk=old.pk).update(
        finished_at=timezone.now() - timedelta(hours=2)
    )
    response = admin_client.get(DASHBOARD)
    assert response.status_code == 200
    by_queue = rows(response)
    default = by_queue["default", "default"]
    assert (default.ready, default.delayed, default.reserved, default.buried) == (
        2,
        1,
        0,
        1,
    )
    assert (default.done_last_hour, default.failed_last_hour) == (0, 1)
    assert default.oldest_ready is not None
    emails = by_queue["default", "emails"]
    assert (emails.done_last_hour, emails.ready) == (1, 0)  # not the old one
    assert by_queue["default", "reports"].reserved == 1
    assert response.context["totals"]["ready"] == 2
    html = response.content.decode()
    assert "?queue=default&amp;backend=default&amp;state=buried" in html


def test_configured_and_paused_queues_are_listed_without_jobs(admin_client, db):
    job = make(queue="idle")
    queue.pause("idle")
    queue.delete(job.pk)
    by_queue = rows(admin_client.get(DASHBOARD))
    assert by_queue["default", "idle"].paused
    assert ("strict", "emails") in by_queue  # in TASKS["strict"]["QUEUES"]
    assert by_queue["strict", "emails"].ready == 0


def test_the_chart_shows_the_last_hour(admin_client, jobs):
    response = admin_client.get(DASHBOARD)
    html = response.content.decode()
    assert '<svg id="jobs-chart"' in html
    assert "1 done, 1 failed" in html  # the current minute's bar
    chart = response.context["chart"]
    assert len(chart["bars"]) == 60
    assert (chart["done"], chart["failed"]) == (1, 1)


def test_pause_and_resume(admin_client, jobs):
    response = admin_client.post(f"{DASHBOARD}pause/", {"queue": "emails"})
    assert response.status_code == 302
    assert [str(m) for m in get_messages(response.wsgi_request)] == [
        "Queue emails paused."
    ]
    assert Queue.objects.get(name="emails").paused
    html = admin_client.get(DASHBOARD).content.decode()
    assert "Resume" in html
    admin_client.post(f"{DASHBOARD}resume/", {"queue": "emails"})
    assert not Queue.objects.get(name="emails").paused


def test_an_unknown_queue_is_refused(admin_client, jobs):
    response = admin_client.post(f"{DASHBOARD}pause/", {"queue": "nosuch"})
    assert response.status_code == 302
    (message,) = get_messages(response.wsgi_request)
    assert message.level_tag == "error"
    assert str(message).startswith("Unknown queue 'nosuch' in backend 'default'")
    assert "Known queues: default, emails, reports." in str(message)
    assert not Queue.objects.exists()


def test_a_resumed_queue_with_nothing_to_show_is_not_listed(admin_client, db):
    Queue.objects.create(name="nosuch", paused=True)  # left by an older pause
    assert ("default", "nosuch") in rows(admin_client.get(DASHBOARD))
    admin_client.post(f"{DASHBOARD}resume/", {"queue": "nosuch"})
    assert ("default", "nosuch") not in rows(admin_client.get(DASHBOARD))


def test_pause_needs_a_post_and_a_name(admin_client, db):
    assert admin_client.get(f"{DASHBOARD}pause/").status_code == 405
    response = admin_client.post(f"{DASHBOARD}pause/", {"queue": ""})
    assert response.status_code == 302
    assert not Queue.objects.exists()


def test_a_viewer_sees_the_dashboard_but_cannot_pause(viewer_client, jobs):
    response = viewer_client.get(DASHBOARD)
    assert response.status_code == 200
    assert "Pause" not in response.content.decode()
    assert viewer_client.post(f"{DASHBOARD}pause/", {"queue": "x"}).status_code == 403
    assert viewer_client.post(f"{DASHBOARD}resume/", {"queue": "x"}).status_code == 403
    assert not Queue.objects.exists()


def test_staff_without_permission_get_403(nobody_client, jobs):
    assert nobody_client.get(DASHBOARD).status_code == 403
    assert nobody_client.post(f"{DASHBOARD}pause/", {"queue": "x"}).status_code == 403
    assert not Queue.objects.exists()


def test_the_app_index_links_to_the_dashboard(admin_client, viewer_client, db):
    html = admin_client.get("/admin/django_jobs/").content.decode()
    assert f'href="{DASHBOARD}"' in html
    html = viewer_client.get("/admin/").content.decode()
    assert f'href="{DASHBOARD}"' in html


def test_the_dashboard_explains_its_words_and_offers_to_refresh(admin_client, jobs):
    queue.pause("emails")
    html = admin_client.get(DASHBOARD).content.decode()
    assert 'title="running: a worker has it">reserved</span>' in html  # a tooltip
    assert 'title="waiting for a worker, due now">ready</span>' in html
    assert 'class="jobs-legend"' in html
    assert "kept for inspection; it runs again only if retried" in html
    assert "retry</strong>" in html
    assert "(kick)" in html
    assert 'data-page="dashboard"' in html
    assert "Refresh every 10 s" in html
    assert " s ago</span>" in html  # how long a paused queue has been paused
