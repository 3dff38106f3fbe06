"""The metrics endpoint: what it says, who may scrape it, and what it costs.

Every scrape is parsed back with prometheus-client's own parsers, in both
formats it serves.
"""

import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as parse_openmetrics,
)
from prometheus_client.parser import text_string_to_metric_families as parse_text

from django_jobs import queue
from django_jobs.models import Worker
from tests.fleet_rows import autoscaling_worker

URL = "/jobs/metrics"
TOKEN = "s3cret-scrape-token"

pytestmark = pytest.mark.urls("tests.metrics_urls")


@pytest.fixture
def token(settings):
    settings.JOBS_METRICS_TOKEN = TOKEN
    return {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}


def samples(text: str, parse=parse_text) -> dict[tuple, float]:
    """{(sample name, (label, value), ...): value} of a scrape."""
    return {
        (sample.name, *sorted(sample.labels.items())): sample.value
        for family in parse(text)
        for sample in family.samples
    }


def fill() -> None:
    """Two queues in every state, and two workers, one of them stale."""
    now = timezone.now()
    queue.enqueue(task_path="tests.tasks.noop", queue="emails")
    queue.enqueue(task_path="tests.tasks.noop", queue="emails")
    queue.enqueue(task_path="tests.tasks.noop", run_at=now + timedelta(hours=1))
    old = queue.enqueue(task_path="tests.tasks.noop", queue="reports")
    queue.bury(old.pk)
    done = queue.enqueue(task_path="tests.tasks.noop", queue="reports", priority=9)
    (claimed,) = queue.claim(worker_id="w1", queues=["reports"])
    queue.complete(done.pk, token=claimed.claim_token)
    queue.enqueue(task_path="tests.tasks.noop", queue="reports")
    queue.claim(worker_id="w1", queues=["reports"])
    Worker.objects.create(id="w1", hostname="h", pid=1, concurrency=4, jobs_in_hand=1)
    Worker.objects.create(
        id="w2",
        hostname="h",
        pid=2,
        concurrency=8,
        last_heartbeat=now - timedelta(minutes=5),
    )


def test_a_scrape_in_prometheus_text(db, token):
    fill()
    response = Client().get(URL, **token)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "no-cache" in response["Cache-Control"]
    got = samples(response.content.decode())

    def queue_jobs(name, state, backend="default"):
        key = ("backend", backend), ("queue", name), ("state", state)
        return got["django_jobs_queue_jobs", *key]

    assert queue_jobs("emails", "ready") == 2
    assert queue_jobs("default", "delayed") == 1
    assert queue_jobs("reports", "reserved") == 1
    assert queue_jobs("reports", "buried") == 1
    labels = ("backend", "default"), ("queue", "reports")
    assert got["django_jobs_queue_done_last_hour", *labels] == 1
    assert got["django_jobs_queue_failed_last_hour", *labels] == 1
    emails = ("backend", "default"), ("queue", "emails")
    assert got["django_jobs_queue_oldest_ready_age_seconds", *emails] >= 0
    assert got["django_jobs_queue_oldest_ready_age_seconds", *labels] == 0
    default = (("backend", "default"),)
    assert got["django_jobs_workers", *default, ("status", "live")] == 1
    assert got["django_jobs_workers", *default, ("status", "stale")] == 1
    assert got["django_jobs_worker_slots", *default] == 4
    assert got["django_jobs_worker_busy_slots", *default] == 1


def test_configured_queues_and_backends_without_workers_read_zero(db, token):
    got = samples(Client().get(URL, **token).content.decode())
    strict = ("backend", "strict"), ("queue", "emails"), ("state", "ready")
    assert got["django_jobs_queue_jobs", *strict] == 0  # TASKS["strict"]["QUEUES"]
    live = ("backend", "strict"), ("status", "live")
    assert got["django_jobs_workers", *live] == 0  # for a "no live worker" alert


def test_each_live_worker_s_size_current_min_and_max(db, token):
    fill()  # w1: fixed at 4, a row older than the range; w2: stale
    autoscaling_worker()
    got = samples(Client().get(URL, **token).content.decode())
    w3 = ("backend", "default"), ("host", "h3"), ("worker", "w3")
    assert got["django_jobs_worker_children", *w3] == 6
    assert got["django_jobs_worker_children_min", *w3] == 2
    assert got["django_jobs_worker_children_max", *w3] == 16
    assert got["django_jobs_worker_connections", *w3] == 14
    w1 = ("backend", "default"), ("host", "h"), ("worker", "w1")
    assert got["django_jobs_worker_children_min", *w1] == 4
    assert got["django_jobs_worker_children_max", *w1] == 4
    assert ("django_jobs_worker_connections", *w1) not in got  # not said
    stale = ("backend", "default"), ("host", "h"), ("worker", "w2")
    assert ("django_jobs_worker_children", *stale) not in got
    assert got["django_jobs_worker_slots", ("backend", "default")] == 10


def test_a_scrape_in_openmetrics(db, token):
    fill()
    accept = "application/openmetrics-text; version=1.0.0,text/plain;q=0.5"
    response = Client().get(URL, HTTP_ACCEPT=accept, **token)
    assert response["Content-Type"].startswith("application/openmetrics-text")
    text = response.content.decode()
    assert text.endswith("# EOF\n")
    got = samples(text, parse_openmetrics)
    key = ("backend", "default"), ("queue", "emails"), ("state", "ready")
    assert got["django_jobs_queue_jobs", *key] == 2
    families = {family.name: family for family in parse_openmetrics(text)}
    oldest = families["django_jobs_queue_oldest_ready_age_seconds"]
    assert (oldest.type, oldest.unit) == ("gauge", "seconds")


def test_a_scrape_costs_the_same_few_queries_whatever_the_size(db, token):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert Client().get(URL, **token).status_code == 200
        return len(captured)

    fill()
    small = queries()
    for i in range(30):
        queue.insert([([], {})] * 20, task_path="tests.tasks.noop", queue=f"q{i}")
    # jobs, workers, workflows, usage of the latest done and buried jobs;
    # on PostgreSQL first the capped count of each state (live_counts)
    capped = connection.vendor == "postgresql"
    assert queries() == small == 5 + capped


@pytest.mark.parametrize(
    ("header", "status"),
    [
        ("", 401),
        ("Bearer wrong", 401),
        (f"Basic {TOKEN}", 401),
        (f"Bearer {TOKEN}", 200),
        (f"bearer {TOKEN}", 200),
    ],
)
def test_the_token(db, settings, header, status):
    settings.JOBS_METRICS_TOKEN = TOKEN
    response = Client().get(URL, HTTP_AUTHORIZATION=header)
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"].startswith("Bearer")


def test_without_a_token_setting_no_bearer_gets_in(db, settings):
    settings.JOBS_METRICS_TOKEN = ""
    assert Client().get(URL, HTTP_AUTHORIZATION="Bearer ").status_code == 403


def login(*codenames: str, staff: bool = True) -> Client:
    user = User.objects.create_user("u", password="pw", is_staff=staff)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("codenames", "staff", "status"),
    [
        (["view_job"], True, 200),
        (["view_queue"], True, 200),
        ([], True, 403),
        (["view_job"], False, 403),
    ],
)
def test_staff_with_the_view_permission(db, codenames, staff, status):
    assert login(*codenames, staff=staff).get(URL).status_code == status


def test_only_get(db, token):
    assert Client().post(URL, **token).status_code == 405


def test_without_prometheus_client_the_error_says_what_to_install(
    db, token, monkeypatch
):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(
        ImproperlyConfigured, match=r"pip install prometheus-client \(the 'metrics'"
    ):
        Client(raise_request_exception=True).get(URL, **token)
    # The rest of the app is not affected: the console still answers.
    admin = User.objects.create_superuser("root", password="pw")
    client = Client()
    client.force_login(admin)
    assert client.get("/admin/django_jobs/queue/").status_code == 200


def test_usage_histograms_per_task(db, token):
    for used in ({"max_rss": 40 * 2**20, "cpu": 0.2}, {"max_rss": 3 * 2**30, "cpu": 7}):
        job = queue.enqueue(task_path="tests.tasks.add")
        (claimed,) = queue.claim(worker_id="w")
        entry = {"attempt": 1, "wall": 1.0, **used}
        queue.complete_returning([(job.pk, claimed.claim_token, 3, entry)])
    text = Client().get(URL, **token).content.decode()
    got = samples(text)
    task = (("backend", "default"), ("task", "tests.tasks.add"))
    memory = "django_jobs_task_peak_memory_bytes"
    assert got[memory + "_bucket", *task[:1], ("le", "67108864"), *task[1:]] == 1
    assert got[memory + "_bucket", *task[:1], ("le", "+Inf"), *task[1:]] == 2
    assert got["django_jobs_task_cpu_seconds_gsum", *task] == 7.2
    families = {family.name: family for family in parse_openmetrics(
        Client().get(URL, HTTP_ACCEPT="application/openmetrics-text", **token)
        .content.decode()
    )}  # fmt: skip
    assert families["django_jobs_task_cpu_seconds"].type == "gaugehistogram"
