"""A job's page: read-only, with its data as JSON and every error's traceback."""

import re

from django.contrib.auth.models import User
from django.utils import timezone

from django_jobs.models import Job

from .conftest import CHANGELIST


def page(client, job):
    return client.get(f"{CHANGELIST}{job.pk}/change/")


def test_a_failed_job_shows_every_error_with_its_traceback(admin_client, jobs):
    html = page(admin_client, jobs["buried"]).content.decode()
    assert '<pre class="jobs-traceback">Traceback (most recent call last):' in html
    assert "ValueError: boom" in html
    assert "Attempt 1" in html
    assert "builtins.ValueError" in html
    assert "&quot;message&quot;: &quot;boom&quot;" in html  # kwargs as JSON
    assert '<pre class="jobs-json">' in html
    assert 'jobs-state-buried" title="failed for good' in html
    assert "kept for inspection; it runs again only if retried" in html  # meaning


def test_a_done_job_shows_its_return_value_and_no_errors(admin_client, jobs):
    html = page(admin_client, jobs["done"]).content.decode()
    assert "&quot;sum&quot;: 42" in html
    assert "[\n  2,\n  40\n]" in html  # args, indented
    assert '<pre class="jobs-traceback">' not in html
    for empty in (">Errors<", ">Output<", "Related jobs", "Progress:", "Checkpoint:"):
        assert empty not in html


def test_a_reserved_job_links_to_its_worker(admin_client, jobs):
    html = page(admin_client, jobs["reserved"]).content.decode()
    assert 'href="/admin/django_jobs/worker/w1/change/">w1</a>' in html
    assert "(lease ends in " in html  # time left on the reservation
    assert admin_client.get("/admin/django_jobs/worker/w1/change/").status_code == 200


def test_the_page_is_read_only_even_for_a_superuser(admin_client, jobs):
    job = jobs["ready"]
    response = page(admin_client, job)
    assert response.context["title"] == "View job"
    assert 'name="_save"' not in response.content.decode()
    assert 'name="CHANGE_FORM-action"' in response.content.decode()
    url = f"{CHANGELIST}{job.pk}/change/"
    assert admin_client.post(url, {"priority": 50, "_save": "1"}).status_code == 403
    assert admin_client.get(f"{CHANGELIST}{job.pk}/delete/").status_code == 403
    job.refresh_from_db()
    assert job.priority == 5


def test_a_viewer_sees_the_page_without_actions(viewer_client, jobs):
    response = page(viewer_client, jobs["buried"])
    assert response.status_code == 200
    assert "CHANGE_FORM-action" not in response.content.decode()


def test_staff_without_permission_cannot_see_a_job(nobody_client, jobs):
    assert page(nobody_client, jobs["buried"]).status_code == 403


def test_history_is_available(admin_client, jobs):
    assert User.objects.exists()
    url = f"{CHANGELIST}{jobs['done'].pk}/history/"
    assert admin_client.get(url).status_code == 200


def test_output_progress_checkpoint_and_related_jobs(admin_client, jobs):
    parent, child = jobs["done"], jobs["ready"]
    Job.objects.filter(pk=parent.pk).update(
        logs=[{"attempt": 1, "text": "hello from the job\n", "truncated": True}],
        progress={"done": 3, "total": 4, "message": "page 3"},
        checkpoint={"page": 7},
    )
    Job.objects.filter(pk=child.pk).update(parent=parent)
    html = page(admin_client, parent).content.decode()
    assert '<pre class="jobs-traceback">hello from the job\n</pre>' in html
    assert "the last part only" in html
    assert '<progress class="jobs-progress" value="3" max="4"></progress>' in html
    assert "3/4 page 3" in html
    assert "&quot;page&quot;: 7" in html
    assert f'href="{CHANGELIST}?parent__id__exact={parent.pk}">1 job</a>' in html
    response = admin_client.get(CHANGELIST, {"parent__id__exact": parent.pk})
    assert [job.pk for job in response.context["cl"].result_list] == [child.pk]
    html = page(admin_client, child).content.decode()
    assert f'href="{CHANGELIST}{parent.pk}/change/"' in html  # its parent
    assert "Related jobs" in html


def test_the_list_does_not_load_the_jobs_json(admin_client, jobs):
    response = admin_client.get(CHANGELIST)
    job = response.context["cl"].result_list[0]
    assert {"args", "errors", "logs", "return_value"} <= job.get_deferred_fields()


def test_times_show_seconds_and_how_long_ago(admin_client, jobs):
    job = jobs["done"]
    html = page(admin_client, job).content.decode()
    finished = timezone.localtime(job.finished_at)
    assert f'<time datetime="{finished.isoformat()}">' in html
    assert f"{finished:%Y-%m-%d %H:%M:%S} UTC</time>" in html
    assert re.search(r'<span class="jobs-note">\(\d+ s ago\)</span>', html)
