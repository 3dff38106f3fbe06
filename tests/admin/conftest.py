"""Users with different permissions, and jobs in every state, for the console.

Jobs are put in their states through ``django_jobs.queue``, as a worker
would: claimed, completed, failed, buried.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.utils import timezone

from django_jobs import queue
from django_jobs.exceptions import class_path
from django_jobs.models import Job, Worker

CHANGELIST = "/admin/django_jobs/job/"
DASHBOARD = "/admin/django_jobs/queue/"
WORKERS = "/admin/django_jobs/worker/"


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def admin_client(db):
    return logged_in(User.objects.create_superuser("root", password="pw"))


@pytest.fixture
def viewer_client(db):
    """Staff with ``view_job`` only: sees jobs, may not act on them."""
    return logged_in(staff("viewer", "view_job"))


@pytest.fixture
def operator_client(db):
    """Staff who may view and change jobs, but not delete them."""
    return logged_in(staff("operator", "view_job", "change_job", "view_worker"))


@pytest.fixture
def nobody_client(db):
    """Staff without any permission."""
    return logged_in(staff("nobody"))


def make(**fields) -> Job:
    fields.setdefault("task_path", "tests.tasks.noop")
    return queue.enqueue(**fields)


def claim(job: Job, worker_id: str = "w1") -> Job:
    (claimed,) = queue.claim(worker_id=worker_id, queues=[job.queue], limit=1)
    assert claimed.pk == job.pk, "another ready job was claimed first"
    return claimed


def error(job: Job, message: str) -> dict:
    traceback = f"Traceback (most recent call last):\nValueError: {message}\n"
    return queue.attempt_error(job, class_path(ValueError), traceback)


@pytest.fixture
def worker(db) -> Worker:
    return Worker.objects.create(
        id="w1", hostname="host-1", pid=4242, queues=["default"], concurrency=2
    )


@pytest.fixture
def jobs(db, worker) -> dict[str, Job]:
    """One job per display state, plus a ready job that already failed once."""
    now = timezone.now()
    made = {}
    made["done"] = make(queue="emails", task_path="tests.tasks.add", args=[2, 40])
    claimed = claim(made["done"])
    queue.complete(claimed.pk, token=claimed.claim_token, return_value={"sum": 42})
    made["buried"] = make(task_path="tests.tasks.fail", kwargs={"message": "boom"})
    claimed = claim(made["buried"])
    queue.bury(claimed.pk, token=claimed.claim_token, error=error(claimed, "boom"))
    made["retried"] = make(task_path="tests.tasks.fail")
    claimed = claim(made["retried"])
    queue.retry(claimed.pk, token=claimed.claim_token, error=error(claimed, "again"))
    made["reserved"] = make(queue="reports")
    claim(made["reserved"])
    made["delayed"] = make(run_at=now + timedelta(hours=1))
    made["ready"] = make(priority=5)
    return {name: Job.objects.get(pk=job.pk) for name, job in made.items()}
