"""The counts per queue: exact up to the cap, estimated and labelled past it.

The cap is lowered (``counting.CAP``) so that a few jobs are "too many";
the sample then reads the whole hot table (``estimates.SAMPLE_PAGES``), so
the estimates can be compared with the counts. SQLite always counts.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from django_jobs import counting, estimates, queue
from django_jobs.live_counts import queue_counts
from django_jobs.models import Job
from tests.integration.test_metrics import TOKEN, URL, samples

postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="estimates are PostgreSQL's"
)


@pytest.fixture
def cap(monkeypatch):
    """A cap of 3 jobs, and a sample of the whole table."""
    monkeypatch.setattr(counting, "CAP", 3)
    monkeypatch.setattr(estimates, "SAMPLE_PAGES", 10**9)
    return 3


def fill() -> dict[str, int]:
    """5 ready jobs in emails, 2 in reports (one of them old), 1 buried."""
    now = timezone.now()
    queue.insert([([], {})] * 5, task_path="tests.tasks.noop", queue="emails")
    old = queue.insert([([], {})] * 2, task_path="tests.tasks.noop", queue="reports")
    Job.objects.filter(pk=old.ids[0]).update(run_at=now - timedelta(hours=2))
    buried = queue.enqueue(task_path="tests.tasks.noop", queue="reports")
    queue.bury(buried.pk)
    return {"old": old.ids[0]}


def test_counts_are_exact_below_the_cap(db):
    fill()
    counts = queue_counts(timezone.now())
    assert counts.estimated == frozenset()
    assert counts["default", "emails"]["ready"] == 5
    assert counts["default", "reports"]["ready"] == 2
    assert counts["default", "reports"]["buried"] == 1


@pytest.mark.skipif(connection.vendor == "postgresql", reason="SQLite's rule")
def test_sqlite_counts_past_the_cap_too(db, cap):
    fill()
    counts = queue_counts(timezone.now())
    assert counts.estimated == frozenset()
    assert counts["default", "emails"]["ready"] == 5


@postgresql
def test_past_the_cap_counts_are_estimated_and_say_so(db, cap):
    fill()
    now = timezone.now()
    counts = queue_counts(now)
    assert counts.estimated == {"ready"}  # 7 ready; 1 buried is under the cap
    assert counts["default", "emails"]["ready"] == 5  # the whole table sampled
    assert counts["default", "reports"]["ready"] == 2
    assert counts["default", "reports"]["buried"] == 1
    # The oldest ready job is found by the walk, exactly.
    old = Job.objects.get(pk=Job.objects.order_by("run_at").first().pk)
    assert counts["default", "reports"]["oldest_ready"] == old.run_at


@postgresql
def test_an_oldest_ready_job_not_met_is_a_bound(db, cap, monkeypatch):
    monkeypatch.setattr(estimates, "WALK_MIN", 1)
    monkeypatch.setattr(counting, "CAP", 2)
    first = queue.insert([([], {})] * 3, task_path="tests.tasks.noop", queue="a")
    late = queue.enqueue(task_path="tests.tasks.noop", queue="b")
    now = timezone.now()
    for minutes, pk in zip((30, 20, 10, 5), [*first.ids, late.pk], strict=True):
        Job.objects.filter(pk=pk).update(run_at=now - timedelta(minutes=minutes))
    counts = queue_counts(now)
    assert "oldest_ready" in counts.estimated
    # The walk read a's two oldest and stopped: b's oldest is no older than
    # where it stopped.
    assert counts["default", "a"]["oldest_ready"] == now - timedelta(minutes=30)
    assert counts["default", "b"]["oldest_ready"] == now - timedelta(minutes=20)


@postgresql
def test_the_last_hour_past_the_cap_is_extrapolated(db, cap):
    queue.insert([([], {})] * 5, task_path="tests.tasks.noop", queue="emails")
    for job in queue.claim(worker_id="w", queues=["emails"], limit=5):
        queue.complete(job.pk, token=job.claim_token)
    counts = queue_counts(timezone.now())
    assert "done_last_hour" in counts.estimated
    assert counts["default", "emails"]["done_last_hour"] > 3


def test_rounding_to_two_significant_digits():
    assert estimates.rounded(7.4) == 7
    assert estimates.rounded(1234) == 1200
    assert estimates.rounded(1_049_999) == 1_000_000
    assert estimates.rounded(98_765) == 99_000


def stats(*args: str) -> str:
    out = StringIO()
    call_command("jobs", "stats", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_stats_json_lists_no_estimates_below_the_cap(db):
    fill()
    report = json.loads(stats("--json"))
    assert report["exact_up_to"] == counting.CAP
    assert report["total"]["estimated"] == []
    assert all(q["estimated"] == [] for q in report["queues"])
    assert "~" not in stats()


@postgresql
def test_stats_mark_the_estimates(db, cap):
    fill()
    report = json.loads(stats("--json"))
    assert report["exact_up_to"] == 3
    assert report["total"]["estimated"] == ["ready"]
    emails = next(q for q in report["queues"] if q["name"] == "emails")
    assert (emails["estimated"], emails["ready"]) == (["ready"], 5)
    text = stats()
    assert "~5" in text
    assert "~ estimated: more than 3 jobs in that state" in text


@pytest.mark.urls("tests.metrics_urls")
@pytest.mark.parametrize("over", [False, True])
def test_metrics_say_which_counts_are_estimates(db, settings, over, request):
    if over:
        if connection.vendor != "postgresql":
            pytest.skip("estimates are PostgreSQL's")
        request.getfixturevalue("cap")
    settings.JOBS_METRICS_TOKEN = TOKEN
    fill()
    response = Client().get(URL, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    got = samples(response.content.decode())
    flag = "django_jobs_queue_counts_estimated"
    assert got[flag, ("count", "ready")] == int(over)
    assert got[flag, ("count", "buried")] == 0
    key = ("backend", "default"), ("queue", "emails"), ("state", "ready")
    assert got["django_jobs_queue_jobs", *key] == 5
