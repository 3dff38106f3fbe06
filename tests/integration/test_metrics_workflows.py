"""The metrics endpoint and workflows: the waiting jobs of each queue, and
the workflows by state, with those that missed their deadline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from django_jobs import queue
from django_jobs.models import Workflow
from django_jobs.testing import run_jobs
from django_jobs.workflows import after, workflow
from tests import workflow_tasks as w
from tests.integration.test_metrics import TOKEN, URL, samples

pytestmark = [pytest.mark.urls("tests.metrics_urls"), pytest.mark.django_db]


@pytest.fixture
def scrape(settings):
    settings.JOBS_METRICS_TOKEN = TOKEN

    def read() -> dict[tuple, float]:
        response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
        assert response.status_code == 200
        return samples(response.content.decode())

    return read


def pipeline(name: str, *, fail: bool = False, **options) -> Workflow:
    with workflow(name, **options) as flow:
        first = w.crawl.using(max_attempts=1).enqueue("merchant", fail=fail)
        second = w.crawl.using(queue_name="emails").enqueue("adwords")
        with after(first, second):
            w.match.enqueue()
    return flow


def workflows(got, state: str, backend: str = "default") -> float:
    return got["django_jobs_workflows", ("backend", backend), ("state", state)]


def missed(got, backend: str = "default") -> float:
    return got["django_jobs_workflows_missed_deadline", ("backend", backend)]


def test_every_backend_reads_zero_workflows_in_every_state(scrape):
    got = scrape()
    for backend in ("default", "strict"):
        for state in ("running", "succeeded", "failed", "cancelled"):
            assert workflows(got, state, backend) == 0
        assert missed(got, backend) == 0


def test_workflows_by_state_and_missed_deadlines(scrape):
    pipeline("running")
    pipeline("cancelled")
    queue.workflows.cancel(Workflow.objects.get(name="cancelled").pk)
    pipeline("late", deadline=timedelta(hours=4))
    Workflow.objects.filter(name="late").update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    assert queue.workflows.missed_deadlines() == 1
    got = scrape()
    assert workflows(got, "running") == 1
    assert workflows(got, "cancelled") == 1
    assert workflows(got, "failed") == 1
    assert missed(got) == 1
    run_jobs(raise_errors=False)
    pipeline("broken", fail=True)
    run_jobs(raise_errors=False)
    queue.settle_running(using="default")  # the rescuer's net, as a worker runs it
    got = scrape()
    assert workflows(got, "succeeded") == 1  # "running" ran to its end
    assert workflows(got, "running") == 0
    assert workflows(got, "failed") == 2  # a step failed: not a deadline
    assert missed(got) == 1


def test_the_waiting_jobs_of_each_queue(scrape):
    pipeline("waits")
    got = scrape()

    def jobs(name: str, state: str) -> float:
        key = ("backend", "default"), ("queue", name), ("state", state)
        return got["django_jobs_queue_jobs", *key]

    assert (jobs("default", "waiting"), jobs("default", "ready")) == (1, 1)
    assert (jobs("emails", "waiting"), jobs("emails", "ready")) == (0, 1)
    strict = ("backend", "strict"), ("queue", "emails"), ("state", "waiting")
    assert got["django_jobs_queue_jobs", *strict] == 0  # configured: zero
