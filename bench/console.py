"""The console over a million jobs: response times of its pages and the metrics.

    python bench/console.py [--jobs 1000000] [--ready 10000] [--runs 7]
                            [--no-history] [--refill] [--explain [MS]]

DATABASE_URL defaults to postgres://postgres@127.0.0.1:5432/django_jobs_bench
(created and migrated if missing). The job table is filled with --jobs rows
by INSERT ... SELECT FROM generate_series, a million rows a statement (kept
between runs, unless it holds another fill, or --refill; the parameters of
the fill are kept in the table bench_console_fill): 30 days of history,
mostly done, 2% buried, 3% that failed once and then succeeded, 200
reserved, and a backlog at the end of the span: the last 2 x --ready jobs
are half ready and a tenth delayed (--ready ready jobs and a fifth as many
delayed); 8 queues, 16 tasks, one queue paused.

On PostgreSQL the done jobs then move into the history's day tables, as on
an install that runs with it (unless --no-history): the first million with
the worker's own mover (``history.move``, 1,000 rows a call; its rate is
the figure for migrating an existing install), the rest with one
DELETE ... RETURNING into INSERT per day, then VACUUM ANALYZE of the job
table and every day table. The rows and size of the hot table and of the
history are printed before the figures.

Every figure is the response time of a GET through Django's test client,
logged in as a superuser (the whole request: middleware, session, queries,
templates), the median of --runs runs after one warm-up; the metrics
endpoint is also scraped as Prometheus does, with a bearer token and no
session, in both of its formats; and ``manage.py jobs stats`` is timed
through call_command. --explain prints the plan of each page's slowest
query (--explain MS: only of the pages whose median is over MS ms). Last,
the counts per queue the console shows (estimated past 10,000 jobs in a
state) beside exact counts.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
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
    FROM generate_series(%(first)s, %(last)s) AS i
), k AS (
    SELECT i, r, t, 1 + floor(r * %(tasks)s)::int AS task,
           CASE
               WHEN i > %(n)s - 200 THEN 'reserved'
               WHEN r2 > 0.98 THEN 'buried'
               WHEN i > %(n)s - %(window)s AND r2 < 0.5 THEN 'ready'
               WHEN i > %(n)s - %(window)s AND r2 < 0.6 THEN 'delayed'
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


#: Rows per INSERT of the fill (a range of i: the same rows as one statement).
CHUNK = 1_000_000
#: Rows the worker's own mover takes, timed, before the set-based moves.
MOVER_ROWS = 1_000_000
#: What the job table was filled with: (jobs, ready, history).
FILLED = "bench_console_fill"


def filled_with() -> tuple[int, int, bool] | None:
    """The parameters of the last complete fill, if the table still holds it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {FILLED}"
            " (jobs bigint NOT NULL, ready bigint NOT NULL, history boolean NOT NULL)"
        )
        cursor.execute(f"SELECT jobs, ready, history FROM {FILLED}")
        row = cursor.fetchone()
        cursor.execute("SELECT count(*) FROM django_jobs_job")  # with the history
        (have,) = cursor.fetchone()
    if row is None or row[0] != have:
        return None
    return (row[0], row[1], row[2])


def fill(n: int, ready: int, history: bool, refill: bool) -> None:
    """Fill the job table with ``n`` jobs, ``ready`` of them ready at the end
    (and a fifth as many delayed), and move the done ones to the history;
    unless it already holds that."""
    from django.db import connection

    from django_jobs import queue
    from django_jobs.models import Job, Worker

    history = history and queue.history.available()
    wanted = (n, ready, history)
    if filled_with() == wanted and not refill:
        print(
            f"Reusing the {n:,} jobs in the table ({ready:,} ready, "
            f"{'with' if history else 'no'} history; --refill to rebuild them)."
        )
        return
    print(f"Filling the job table with {n:,} jobs...", flush=True)
    start = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {FILLED}")
        if queue.history.available():
            for name in queue.history.tables().values():
                cursor.execute(f'DROP TABLE "{name}"')
        cursor.execute("TRUNCATE django_jobs_job RESTART IDENTITY")
        cursor.execute("SELECT setseed(0.42)")
        for first in range(1, n + 1, CHUNK):
            last = min(first + CHUNK - 1, n)
            cursor.execute(
                FILL,
                {
                    "n": n,
                    "first": first,
                    "last": last,
                    # The backlog's rows: half ready, a tenth delayed.
                    "window": min(2 * ready, n),
                    "span": SPAN_SECONDS,
                    "tasks": len(TASKS),
                    "paths": [path for path, _ in TASKS],
                    "queues": [name for _, name in TASKS],
                },
            )
            if n > CHUNK:
                elapsed = time.perf_counter() - start
                print(f"  {last:,} rows, {elapsed:.0f} s", flush=True)
        cursor.execute("VACUUM ANALYZE django_jobs_job")
    Worker.objects.all().delete()
    Worker.objects.create(
        id="bench-worker", hostname="bench", pid=1, concurrency=8, jobs_in_hand=8
    )
    queue.pause("exports")
    print(f"  {Job.objects.count():,} jobs in {time.perf_counter() - start:.0f} s")
    if history:
        to_history()
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {FILLED} VALUES (%s, %s, %s)", list(wanted))


def to_history() -> None:
    """Move the done jobs into the day tables: the first ``MOVER_ROWS`` with
    the worker's mover (timed: the migration of an existing install), the
    rest with one statement per day; then VACUUM ANALYZE every table."""
    from datetime import UTC, datetime
    from datetime import time as midnight

    from django.db import connection
    from django.utils import timezone

    from django_jobs.queue import history

    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), min(finished_at), max(finished_at)"
            " FROM ONLY django_jobs_job WHERE state = 'done'"
        )
        done, oldest, newest = cursor.fetchone()
    if not done:
        return
    first, last = history.day_of(oldest), history.day_of(newest)
    days = [first + timedelta(days=k) for k in range((last - first).days + 1)]
    # Made ahead, as the pruner does for today's and the next days': the
    # mover's figure is then its moves alone (a table takes milliseconds).
    start = time.perf_counter()
    for day in days:
        history.create(day)
    print(f"Made {len(days)} day tables in {time.perf_counter() - start:.1f} s")

    target = min(MOVER_ROWS, done)
    print(
        f"Moving {target:,} of the {done:,} done jobs with the worker's mover "
        f"(history.move, {history.BATCH:,} rows a call)...",
        flush=True,
    )
    moved = 0
    start = time.perf_counter()
    while moved < target:
        count = history.move(before=now, limit=min(history.BATCH, target - moved))
        if not count:
            break
        moved += count
        if moved % 100_000 == 0 and moved < target:
            elapsed = time.perf_counter() - start
            print(f"  {moved:,} rows, {elapsed:.0f} s", flush=True)
    elapsed = time.perf_counter() - start
    print(
        f"  moved {moved:,} done jobs with the worker's mover in {elapsed:.1f} s: "
        f"{elapsed * 1_000_000 / max(moved, 1):.0f} s per million rows"
    )

    print("Moving the rest, one statement per day...", flush=True)
    start = time.perf_counter()
    total = 0
    for day in days:
        name = history.create(day)
        low = datetime.combine(day, midnight(), tzinfo=UTC)
        began = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(
                "WITH gone AS (DELETE FROM ONLY django_jobs_job WHERE state = 'done'"
                " AND finished_at >= %s AND finished_at < %s RETURNING *)"
                f' INSERT INTO "{name}" SELECT * FROM gone',
                [low, low + history.PARTITION],
            )
            count = cursor.rowcount
        total += count
        if not count:
            continue  # a day the mover emptied
        print(
            f"  {day}: {count:,} rows in {time.perf_counter() - began:.1f} s"
            f" ({total:,} in {time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    print(f"  moved {total:,} in {time.perf_counter() - start:.0f} s")

    start = time.perf_counter()
    with connection.cursor() as cursor:
        for name in ["django_jobs_job", *sorted(history.tables().values())]:
            cursor.execute(f'VACUUM ANALYZE "{name}"')
    elapsed = time.perf_counter() - start
    print(f"VACUUM ANALYZE of the job table and its days: {elapsed:.0f} s")


def describe_tables() -> None:
    """Rows and size of the hot table and of the history."""
    from django.db import connection

    from django_jobs.queue import history

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FILTER (WHERE state = 'ready' AND run_at <= now()),"
            " count(*) FILTER (WHERE state = 'ready' AND run_at > now()),"
            " count(*) FILTER (WHERE state = 'buried'),"
            " count(*) FILTER (WHERE state = 'reserved'),"
            " count(*) FILTER (WHERE state = 'done'), count(*)"
            " FROM ONLY django_jobs_job"
        )
        ready, delayed, buried, reserved, done, hot = cursor.fetchone()
        cursor.execute("SELECT pg_total_relation_size('django_jobs_job')")
        (hot_size,) = cursor.fetchone()
        days = sorted(history.tables().values()) if history.available() else []
        rows = size = 0
        for name in days:
            cursor.execute(
                f'SELECT count(*), pg_total_relation_size(%s::regclass) FROM "{name}"',
                [f'"{name}"'],
            )
            count, bytes_ = cursor.fetchone()
            rows += count
            size += bytes_
    print(
        f"\nHot table (django_jobs_job alone): {hot:,} rows, {megabytes(hot_size)}"
        f" ({ready:,} ready, {delayed:,} delayed, {reserved:,} reserved,"
        f" {buried:,} buried, {done:,} done)"
    )
    print(f"History: {len(days)} day tables, {rows:,} rows, {megabytes(size)}")


def megabytes(size: int) -> str:
    return f"{size / 2**20:,.0f} MB"


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
        ("state = done, oldest first", f"{jobs}?state=done&o=1"),
        ("state = buried", f"{jobs}?state=buried"),
        ("queue = emails", f"{jobs}?queue=emails"),
        ("queue = emails, state = ready", f"{jobs}?queue=emails&state=ready"),
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


def measure(fetch: Callable[[], object], runs: int) -> tuple[list[float], list]:
    """Times in ms of ``runs`` calls of ``fetch`` (after one), and one's queries."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        fetch()
    queries = list(captured)  # the next request clears the log
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fetch()
        times.append((time.perf_counter() - start) * 1000)
    return times, queries


def get(client, url: str) -> Callable[[], object]:
    """A GET of ``url`` that must answer 200."""

    def fetch():
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        return response

    return fetch


def stats_command() -> str:
    """``manage.py jobs stats``, its output captured."""
    from django.core.management import call_command

    out = io.StringIO()
    call_command("jobs", "stats", stdout=out, stderr=io.StringIO())
    return out.getvalue()


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
    parser.add_argument("--ready", type=int, default=10_000)
    parser.add_argument("--no-history", dest="history", action="store_false")
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--refill", action="store_true")
    parser.add_argument(
        "--explain", type=float, nargs="?", const=0.0, default=None, metavar="MS"
    )
    options = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    settings.DEBUG = False
    serve_metrics()
    fill(options.jobs, options.ready, options.history, options.refill)
    describe_tables()
    user = User.objects.filter(username="bench-admin").first()
    user = user or User.objects.create_superuser("bench-admin", password="x")
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    pages = [(label, get(client, url)) for label, url in cases()]
    pages += [
        (
            label,
            get(
                Client(
                    HTTP_HOST="localhost",
                    HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
                    HTTP_ACCEPT=accept,
                ),
                METRICS,
            ),
        )
        for label, accept in SCRAPES
    ]
    pages.append(("jobs stats (command)", stats_command))
    rows = []
    for label, fetch in pages:
        times, queries = measure(fetch, options.runs)
        rows.append(timing_row(label, times, queries))
        if options.explain is not None and statistics.median(times) > options.explain:
            explain(label, queries)
    print_table(
        f"Console response times over {options.jobs:,} jobs ({options.ready:,} "
        f"ready, {'history' if history_on() else 'no history'}), ms "
        f"(median of {options.runs} requests; target < 300)",
        ["page", "median", "min", "max", "queries", "slowest query"],
        rows,
    )
    accuracy()


def accuracy() -> None:
    """The counts per queue the console shows (estimated past the cap)
    beside exact ones, per state: the totals and the worst queue."""
    from django.utils import timezone

    from django_jobs import counting
    from django_jobs.live_counts import LIVE, queue_counts

    now = timezone.now()
    shown = queue_counts(now)
    cap, counting.CAP = counting.CAP, 10**12
    try:
        exact = queue_counts(now)
    finally:
        counting.CAP = cap
    rows = []
    for name in (*LIVE, "done_last_hour", "failed_last_hour"):
        pairs = [
            (shown.get(key, {}).get(name, 0), exact.get(key, {}).get(name, 0))
            for key in set(shown) | set(exact)
        ]
        errors = [abs(s - e) / e for s, e in pairs if e]
        rows.append(
            [
                name,
                "estimated" if name in shown.estimated else "exact",
                f"{sum(s for s, _ in pairs):,}",
                f"{sum(e for _, e in pairs):,}",
                f"{max(errors, default=0):.1%}",
            ]
        )
    print_table(
        "Counts shown beside exact counts (all queues)",
        ["count", "shown", "total shown", "total exact", "worst queue off by"],
        rows,
    )


def history_on() -> bool:
    """Whether the job table has day tables (the history is in use)."""
    from django_jobs.queue import history

    return history.available() and bool(history.tables())


if __name__ == "__main__":
    main()
