"""Actions: each goes through django_jobs.queue and reports what it did."""

import pytest
from django.contrib.messages import get_messages

from django_jobs import queue
from django_jobs.admin import actions
from django_jobs.models import Job

from .conftest import CHANGELIST, make

ACTIONS = ["bury_jobs", "retry_jobs", "cancel_jobs", "reprioritise_jobs"]
ACTIONS += ["delete_jobs"]


def run(client, action, jobs, url=CHANGELIST, **extra):
    data = {"action": action, "index": 0, "_selected_action": [j.pk for j in jobs]}
    return client.post(url, {**data, **extra})


def confirm(client, action, jobs, url=CHANGELIST, **extra):
    """The second step of an action that asks first."""
    data = {"action": action, "post": "yes", "_selected_action": [j.pk for j in jobs]}
    return client.post(url, {**data, **extra})


def said(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def state(job) -> str:
    return Job.objects.get(pk=job.pk).display_state


def test_bury(admin_client, jobs):
    chosen = [jobs["ready"], jobs["delayed"], jobs["done"]]
    response = run(admin_client, "bury_jobs", chosen)
    assert response.status_code == 302
    assert said(response) == [
        "2 jobs buried, 1 skipped (not in a state that allows it)."
    ]
    assert [state(job) for job in chosen] == ["buried", "buried", "done"]


def test_retry_kicks_buried_jobs_and_runs_delayed_ones_now(admin_client, jobs):
    chosen = [jobs["buried"], jobs["delayed"], jobs["ready"], jobs["done"]]
    response = run(admin_client, "retry_jobs", chosen)
    assert said(response) == [
        "2 jobs retried, 2 skipped (not in a state that allows it)."
    ]
    assert [state(job) for job in chosen] == ["ready", "ready", "ready", "done"]


def test_cancel(admin_client, jobs):
    chosen = [jobs["ready"], jobs["reserved"], jobs["done"]]
    response = run(admin_client, "cancel_jobs", chosen)
    messages = said(response)
    assert messages[0] == "2 jobs cancelled, 1 skipped (not in a state that allows it)."
    assert "stopped by their worker within a few seconds" in messages[1]
    ready = Job.objects.get(pk=jobs["ready"].pk)
    assert ready.state == "buried"
    assert ready.errors[-1]["exception_class_path"].endswith("JobCancelled")
    reserved = Job.objects.get(pk=jobs["reserved"].pk)
    assert reserved.state == "reserved"  # until its worker stops it
    assert reserved.cancel_requested_at is not None


def test_retry_of_a_cancelled_job_clears_its_cancel_request(admin_client, jobs):
    reserved = jobs["reserved"]
    run(admin_client, "cancel_jobs", [reserved])
    # Its worker stops it and buries it (as the holder of its claim).
    queue.bury(reserved.pk, token=reserved.claim_token)
    response = run(admin_client, "retry_jobs", [reserved])
    assert said(response)[-1] == "1 job retried."
    job = Job.objects.get(pk=reserved.pk)
    assert (job.state, job.cancel_requested_at) == ("ready", None)


def test_delete_asks_first(admin_client, jobs):
    chosen = [jobs["done"], jobs["buried"], jobs["reserved"]]
    response = run(admin_client, "delete_jobs", chosen)
    assert response.status_code == 200
    assert "Jobs held by a worker are skipped" in response.content.decode()
    assert Job.objects.filter(pk__in=[j.pk for j in chosen]).count() == 3
    response = confirm(admin_client, "delete_jobs", chosen)
    assert response.status_code == 302
    assert said(response) == [
        "2 jobs deleted, 1 skipped (not in a state that allows it)."
    ]
    assert list(Job.objects.filter(pk__in=[j.pk for j in chosen])) == [jobs["reserved"]]


def test_change_priority_asks_for_the_priority(admin_client, jobs):
    chosen = [jobs["ready"], jobs["delayed"], jobs["reserved"]]
    response = run(admin_client, "reprioritise_jobs", chosen)
    assert response.status_code == 200
    assert 'name="priority"' in response.content.decode()
    response = confirm(admin_client, "reprioritise_jobs", chosen, priority=101)
    assert response.status_code == 200  # asked again, with the error
    assert "less than or equal to 100" in response.content.decode()
    response = confirm(admin_client, "reprioritise_jobs", chosen, priority=-20)
    assert said(response) == [
        "2 jobs reprioritised, 1 skipped (not in a state that allows it)."
    ]
    priorities = [Job.objects.get(pk=job.pk).priority for job in chosen]
    assert priorities == [-20, -20, 0]


def test_an_action_on_all_matching_jobs_follows_the_filters(admin_client, jobs):
    response = run(
        admin_client,
        "bury_jobs",
        [jobs["ready"]],
        url=f"{CHANGELIST}?queue=default&state=ready",
        select_across=1,
    )
    assert said(response) == ["2 jobs buried."]
    assert state(jobs["ready"]) == state(jobs["retried"]) == "buried"
    assert state(jobs["delayed"]) == "delayed"


def test_large_selections_go_in_batches(admin_client, db, monkeypatch):
    monkeypatch.setattr(actions, "CHUNK", 2)
    chosen = [make() for _ in range(5)]
    response = run(admin_client, "bury_jobs", chosen)
    assert said(response) == ["5 jobs buried."]


def test_actions_on_a_jobs_page(admin_client, jobs):
    job = jobs["ready"]
    url = f"{CHANGELIST}{job.pk}/change/"
    data = {"CHANGE_FORM-action": "bury_jobs", "_selected_action": job.pk}
    response = admin_client.post(url, data)
    assert response.status_code == 302
    assert response.url == url
    assert said(response) == ["1 job buried."]
    assert state(job) == "buried"


def test_delete_from_a_jobs_page(admin_client, jobs):
    job = jobs["buried"]
    url = f"{CHANGELIST}{job.pk}/change/"
    data = {"CHANGE_FORM-action": "delete_jobs", "_selected_action": job.pk}
    response = admin_client.post(url, data)
    assert response.status_code == 200
    assert 'name="CHANGE_FORM-action" value="delete_jobs"' in (
        response.content.decode()
    )
    response = admin_client.post(url, {**data, "post": "yes"})
    assert response.url == CHANGELIST
    assert not Job.objects.filter(pk=job.pk).exists()


@pytest.mark.parametrize("action", ACTIONS)
def test_a_viewer_gets_403_and_nothing_changes(viewer_client, jobs, action):
    before = {job.pk: (job.state, job.priority) for job in Job.objects.all()}
    response = run(viewer_client, action, list(jobs.values()))
    assert response.status_code == 403
    response = confirm(viewer_client, action, list(jobs.values()), priority=9)
    assert response.status_code == 403
    after = {job.pk: (job.state, job.priority) for job in Job.objects.all()}
    assert after == before


@pytest.mark.parametrize("action", ACTIONS)
def test_staff_without_permission_get_403(nobody_client, jobs, action):
    assert run(nobody_client, action, [jobs["ready"]]).status_code == 403
    job = jobs["ready"]
    url = f"{CHANGELIST}{job.pk}/change/"
    data = {"CHANGE_FORM-action": action, "_selected_action": job.pk}
    assert nobody_client.post(url, data).status_code == 403
    assert state(job) == "ready"


def test_delete_needs_the_delete_permission(operator_client, jobs):
    html = operator_client.get(CHANGELIST).content.decode()
    assert 'value="bury_jobs"' in html
    assert 'value="delete_jobs"' not in html
    assert 'value="delete_selected"' not in html
    assert run(operator_client, "delete_jobs", [jobs["done"]]).status_code == 403
    job = jobs["done"]
    url = f"{CHANGELIST}{job.pk}/change/"
    data = {"CHANGE_FORM-action": "delete_jobs", "_selected_action": job.pk}
    assert operator_client.post(url, data).status_code == 403
    assert Job.objects.filter(pk=job.pk).exists()
    assert run(operator_client, "bury_jobs", [jobs["ready"]]).status_code == 302
    assert state(jobs["ready"]) == "buried"


def test_djangos_bulk_delete_is_not_offered(admin_client, jobs):
    html = admin_client.get(CHANGELIST).content.decode()
    assert 'value="delete_selected"' not in html
    assert run(admin_client, "delete_selected", [jobs["done"]]).status_code == 403
