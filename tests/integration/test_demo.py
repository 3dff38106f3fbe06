"""The demo app enqueues the ways the docs recommend."""

import pytest
from django.db import transaction

from django_jobs.models import Job
from testproject.demo.models import Signup


@pytest.mark.django_db(transaction=True)
def test_signup_enqueues_a_welcome_email_after_commit():
    with transaction.atomic():
        signup = Signup.objects.create(email="ada@example.com")
        assert not Job.objects.exists()  # not before the commit
    job = Job.objects.get()
    assert job.task_path == "testproject.demo.tasks.send_welcome"
    assert job.args == [signup.pk]
    assert (job.queue, job.priority, job.ttr, job.max_attempts) == ("emails", 10, 30, 5)


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_signup_enqueues_nothing():
    with pytest.raises(RuntimeError), transaction.atomic():
        Signup.objects.create(email="ada@example.com")
        raise RuntimeError
    assert not Job.objects.exists()


def test_view_enqueues_and_reports_the_result(client, db):
    response = client.post("/add/", {"a": 2, "b": 40})
    assert response.status_code == 202
    job = Job.objects.get(pk=response.json()["id"])
    assert job.args == [2, 40]
    status = client.get(f"/results/{job.pk}/").json()
    assert status == {"id": str(job.pk), "status": "READY"}


def test_view_rejects_bad_input_and_writes_nothing(client, db):
    assert client.post("/add/", {"a": "x", "b": 1}).status_code == 400
    assert client.get("/results/nope/").status_code == 404
    assert not Job.objects.exists()


def test_signup_page(client, db):
    response = client.post("/", {"email": "grace@example.com"}, follow=True)
    assert b"grace@example.com" in response.content
