"""The console over a million jobs: response times of its pages and the metrics.

    python bench/console.py [--jobs 1000000] [--runs 7] [--refill] [--explain]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/django_jobs_bench
(created and migrated if missing). The job table is filled with --jobs rows
by one INSERT ... SELECT FROM generate_series (kept between runs unless it
holds another number of jobs, or --refill): 30 days of history, mostly done,
2% buried, 3% that failed once and then succeeded, 200 reserved, and a
backlog: half of the last 20,000 jobs (about 14 hours) still ready and a
tenth delayed; 8 queues, 16 tasks, one queue paused.

Every figure is the response time of a GET through Django's test client,
logged in as a superuser (the whole request: middleware, session, queries,
templates), the median of --runs runs after one warm-up; the metrics
endpoint is also scraped as Prometheus does, with a bearer token and no
session, in both of its formats. --explain prints the plan of each page's
slowest query.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import timedelta
from types import ModuleType

from common import print_table, setup_django

SPAN_SECONDS = 30 * 24 * 3600
TASKS = [  # (task path, queue); repeated entries are more frequent
    ("myapp.emails.send_welcome", "emails"),
    ("myapp.emails.send_welcome", "emails"),
    ("myapp.emails.send_receipt", "emails"),
    ("myapp.emails.send_digest", "emails"),
    ("myapp.images.resize", "default"),
    ("myapp.images.resize", "default"),
    ("myapp.images.resize", "default"),
    ("myapp.accounts.sync", "default"),
    ("myapp.accounts.sync", "default"),
    ("myapp.search.reindex", "default"),
    ("myapp.reports.daily_sales", "reports"),
    ("myapp.reports.export_csv", "reports"),
    ("myapp.reports.export_csv", "reports"),
    ("myapp.webhooks.deliver", "webhooks"),
    ("myapp.billing.charge", "billing"),
    ("myapp.billing.refund", "billing"),
    ("myapp.thumbnails.render", "thumbnails"),
    ("myapp.exports.archive", "exports"),
    ("myapp.search.suggest", "search"),
    ("myapp.cleanup.purge_sessions", "default"),
]

FILL = """
WITH s AS (
    SELECT i, random() AS r, random() AS r2,
           now() - make_interval(secs => (%(n)s - i)::float * %(span)s / %(n)s) AS t
    FROM generate_series(1, %(n)s) AS i
), k AS (
    SELECT i, r, t, 1 + floor(r * %(tasks)s)::int AS task,
           CASE
               WHEN i > %(n)s - 200 THEN 'reserved'
               WHEN r2 > 0.98 THEN 'buried'
               WHEN i > %(n)s - 20000 AND r2 < 0.5 THEN 'ready'
               WHEN i > %(n)s - 20000 AND r2 < 0.6 THEN 'delayed'
               ELSE 'done'
           END AS kind,
           r2 > 0.95 AND r2 <= 0.98 AS failed_once
    FROM s
)
INSERT INTO django_jobs_job (
    backend, queue, task_path, args, kwargs, state, priority, run_at, ttr,
    attempts, max_attempts, on_failure, enqueued_at, started_at,
    last_attempted_at, finished_at, reserved_until, reserved_by, claim_token,
    worker_ids, errors, return_value
)
SELECT
    'default',
    (%(queues)s::text[])[task],
    (%(paths)s::text[])[task],
    jsonb_build_array(i),
    '{}'::jsonb,
    CASE WHEN kind = 'delayed' THEN 'ready' ELSE kind END,
    CASE WHEN r < 0.1 THEN 10 ELSE 0 END,
    CASE WHEN kind = 'delayed' THEN now() + make_interval(mins => (r * 600)::int)
         ELSE t END,
    300,
    CASE kind WHEN 'buried' THEN 3 WHEN 'ready' THEN 0 WHEN 'delayed' THEN 1
         ELSE 1 + failed_once::int END,
    3,
    'bury',
    t,
    CASE WHEN kind IN ('ready', 'delayed') THEN NULL ELSE t + interval '1 second' END,
    CASE WHEN kind IN ('ready', 'delayed') THEN NULL ELSE t + interval '1 second' END,
    CASE WHEN kind IN ('done', 'buried') THEN t + interval '2 seconds' END,
    CASE WHEN kind = 'reserved' THEN now() + interval '5 minutes' END,
    CASE WHEN kind = 'reserved' THEN 'bench-worker' ELSE '' END,
    CASE WHEN kind = 'reserved' THEN md5(i::text) ELSE '' END,
    CASE WHEN kind = 'ready' THEN '[]'::jsonb ELSE '["bench-worker"]'::jsonb END,
    CASE
        WHEN kind = 'buried' THEN jsonb_build_array(
            jsonb_build_object('exception_class_path', 'builtins.TimeoutError',
                'traceback', 'Traceback (most recent call last):' || chr(10)
                    || 'TimeoutError: upstream timed out for ' || i,
                'attempt', 1, 'worker_id', 'bench-worker', 'at', t),
            jsonb_build_object('exception_class_path', 'builtins.TimeoutError',
                'traceback', 'Traceback (most recent call last):' || chr(10)
                    || 'TimeoutError: upstream timed out for ' || i,
                'attempt', 2, 'worker_id', 'bench-worker', 'at', t),
            jsonb_build_object('exception_class_path', 'builtins.ValueError',
                'traceback', 'Traceback (most recent call last):' || chr(10)
                    || 'ValueError: no such account ' || i,
                'attempt', 3, 'worker_id', 'bench-worker', 'at', t))
        WHEN failed_once OR kind = 'delayed' THEN jsonb_build_array(
            jsonb_build_object('exception_class_path', 'builtins.ConnectionError',
                'traceback', 'Traceback (most recent call last):' || chr(10)
                    || 'ConnectionError: connection reset ' || i,
                'attempt', 1, 'worker_id', 'bench-worker', 'at', t))
        ELSE '[]'::jsonb
    END,
    CASE WHEN kind = 'done' THEN '"ok"'::jsonb END
FROM k
"""


def fill(n: int, refill: bool) -> None:
    """Fill the job table with ``n`` jobs, unless it already holds that many."""
    from django.db import connection

    from django_jobs import queue
    from django_jobs.models import Job, Worker

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_jobs_job")
        (have,) = cursor.fetchone()
    if have == n and not refill:
        print(f"Reusing the {n:,} jobs in the table (--refill to rebuild them).")
        return
    print(f"Filling the job table with {n:,} jobs...", flush=True)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE django_jobs_job RESTART IDENTITY")
        cursor.execute("SELECT setseed(0.42)")
        cursor.execute(
            FILL,
            {
                "n": n,
                "span": SPAN_SECONDS,
                "tasks": len(TASKS),
                "paths": [path for path, _ in TASKS],
                "queues": [name for _, name in TASKS],
            },
        )
        cursor.execute("VACUUM ANALYZE django_jobs_job")
    Worker.objects.all().delete()
    Worker.objects.create(
        id="bench-worker", hostname="bench", pid=1, concurrency=8, jobs_in_hand=8
    )
    queue.pause("exports")
    print(f"  {Job.objects.count():,} jobs in {time.perf_counter() - start:.0f} s")


def cases() -> list[tuple[str, str]]:
    """(label, URL) of every page measured."""
    from django.utils import timezone

    from django_jobs.models import Job

    jobs = "/admin/django_jobs/job/"
    buried = Job.objects.filter(state="buried").order_by("-pk").first()
    today = timezone.localtime()
    old = today - timedelta(days=20)
    day = "enqueued_at__year={}&enqueued_at__month={}&enqueued_at__day={}"
    return [
        ("job list (default view)", jobs),
        ("state = ready", f"{jobs}?state=ready"),
        ("state = delayed", f"{jobs}?state=delayed"),
        ("state = reserved", f"{jobs}?state=reserved"),
        ("state = done", f"{jobs}?state=done"),
        ("state = buried", f"{jobs}?state=buried"),
        ("queue = emails", f"{jobs}?queue=emails"),
        ("queue = search (small)", f"{jobs}?queue=search"),
        ("task = export_csv", f"{jobs}?task_path=myapp.reports.export_csv"),
        ("task = suggest (small)", f"{jobs}?task_path=myapp.search.suggest"),
        ("failed at least once", f"{jobs}?failed=yes"),
        ("never failed", f"{jobs}?failed=no"),
        ("queue = reports, buried", f"{jobs}?queue=reports&state=buried"),
        ("worker's reserved jobs", f"{jobs}?state=reserved&reserved_by=bench-worker"),
        (
            "enqueued this month",
            f"{jobs}?enqueued_at__year={today.year}&enqueued_at__month={today.month}",
        ),
        ("enqueued today", f"{jobs}?" + day.format(today.year, today.month, today.day)),
        ("enqueued 20 days ago", f"{jobs}?" + day.format(old.year, old.month, old.day)),
        ("search: a job id", f"{jobs}?q={buried.pk}"),
        ("search: task path", f"{jobs}?q=billing"),
        ("search: error text", f"{jobs}?q=no+such+account+4242"),
        ("page 50", f"{jobs}?p=50"),
        ("a buried job's page", f"{jobs}{buried.pk}/change/"),
        ("queue dashboard", "/admin/django_jobs/queue/"),
        ("workers", "/admin/django_jobs/worker/"),
        ("metrics (staff session)", METRICS),
    ]


METRICS = "/jobs/metrics"
TOKEN = "bench-token"
#: (label, Accept header) of the scrapes made with the token.
SCRAPES = [
    ("metrics (token, Prometheus text)", ""),
    ("metrics (token, OpenMetrics)", "application/openmetrics-text; version=1.0.0"),
]


def serve_metrics() -> None:
    """The test project's URLs plus django_jobs.urls, and a scrape token."""
    from django.conf import settings
    from django.urls import clear_url_caches, include, path

    from testproject import urls

    urlconf = ModuleType("bench_urls")  # a module: Django caches resolvers by it
    urlconf.urlpatterns = [
        *urls.urlpatterns,
        path("jobs/", include("django_jobs.urls")),
    ]
    settings.ROOT_URLCONF = urlconf
    settings.JOBS_METRICS_TOKEN = TOKEN
    clear_url_caches()


def measure(client, url: str, runs: int) -> tuple[list[float], list[dict]]:
    """Response times in ms of ``runs`` GETs (after one), and one's queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    queries = list(captured)  # the next request clears the log
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - start) * 1000)
    return times, queries


def timing_row(label: str, times: list[float], queries: list[dict]) -> list:
    """A page's line: median, min and max ms, its queries and the slowest."""
    slowest = max(float(query["time"]) for query in queries) * 1000
    spread = (statistics.median(times), min(times), max(times))
    return [label, *(f"{t:.0f}" for t in spread), len(queries), f"{slowest:.0f}"]


def explain(label: str, queries: list[dict]) -> None:
    from django.db import connection

    slowest = max(queries, key=lambda query: float(query["time"]))
    print(f"\n-- {label}: slowest query ({float(slowest['time']) * 1000:.1f} ms)")
    print(slowest["sql"])
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {slowest['sql']}")
        print("\n".join(row[0] for row in cursor.fetchall()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument("--explain", action="store_true")
    options = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    settings.DEBUG = False
    serve_metrics()
    fill(options.jobs, options.refill)
    user = User.objects.filter(username="bench-admin").first()
    user = user or User.objects.create_superuser("bench-admin", password="x")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    pages = [(client, label, url) for label, url in cases()]
    pages += [
        (
            Client(
                HTTP_HOST="localhost",
                HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                HTTP_ACCEPT=accept,
            ),
            label,
            METRICS,
        )
        for label, accept in SCRAPES
    ]
    rows = []
    for browser, label, url in pages:
        times, queries = measure(browser, url, options.runs)
        rows.append(timing_row(label, times, queries))
        if options.explain:
            explain(label, queries)
    print_table(
        f"Console response times over {options.jobs:,} jobs, ms "
        f"(median of {options.runs} requests; target < 300)",
        ["page", "median", "min", "max", "queries", "slowest query"],
        rows,
    )


if __name__ == "__main__":
    main()
