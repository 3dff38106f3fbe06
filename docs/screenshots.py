"""Regenerate the console screenshots in docs/_static/ (the admin page of the docs).

    .venv/bin/python docs/screenshots.py [NAME.png ...]

With names (``admin-workflow.png``), only those are taken again.

Builds a throw-away SQLite database with an hour of made-up activity, serves
the test project with ``runserver`` and photographs the dashboard, the job
list, a failed job and a workflow's page with Debian's Chromium, driven by Playwright
(``apt-get install chromium``; ``pip install playwright``, no browser
download). The jobs are written as finished rows straight away (bulk_create)
because the point is their look, not their life; the console itself only
changes jobs through ``django_jobs.queue``.
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "docs" / "_static"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TRACEBACK = """Traceback (most recent call last):
  File "/srv/app/django_jobs/worker/child.py", line 88, in run_job
    value = task.call(*job.args, **job.kwargs)
  File "/srv/app/testproject/demo/tasks.py", line 27, in flaky_report
    raise RuntimeError(f"the {name} report's data source is down")
RuntimeError: the sales report's data source is down
"""
OUTPUT = """connecting to reports-db.internal:5432
fetching sales for 2026-11-26
retrying in 2 s: connection refused
"""


def fill() -> int:
    """Write an hour of jobs, two workers and a paused queue; return a failed job."""
    from django.contrib.auth.models import User
    from django.utils import timezone

    from django_jobs import queue
    from django_jobs.models import Job, Worker

    rng = random.Random(4)
    now = timezone.now()
    tasks = {
        "emails": ["testproject.demo.tasks.send_welcome"],
        "reports": ["testproject.demo.tasks.slow_report", "testproject.demo.tasks.add"],
        "default": ["myapp.tasks.resize_image", "myapp.tasks.sync_account"],
    }
    rows = []
    for i in range(1500):
        name = rng.choice(["emails", "emails", "default", "reports"])
        finished = now - timedelta(seconds=rng.uniform(0, 3600))
        failed = rng.random() < 0.04
        rows.append(
            Job(
                queue=name,
                task_path=rng.choice(tasks[name]),
                args=[i],
                state="buried" if failed else "done",
                attempts=3 if failed else 1,
                enqueued_at=finished - timedelta(seconds=rng.uniform(0.1, 30)),
                run_at=finished - timedelta(seconds=20),
                started_at=finished - timedelta(seconds=rng.uniform(0.05, 5)),
                finished_at=finished,
                return_value=None if failed else f"ok {i}",
                errors=[error(a, "web-1:311:a1b2", finished) for a in (1, 2, 3)]
                if failed
                else [],
            )
        )
    for i in range(40):
        name = rng.choice(list(tasks))
        delayed = rng.random() < 0.3
        rows.append(
            Job(
                queue=name,
                task_path=rng.choice(tasks[name]),
                args=[i],
                enqueued_at=now - timedelta(seconds=rng.uniform(1, 400)),
                run_at=now + timedelta(minutes=rng.uniform(1, 30))
                if delayed
                else now - timedelta(seconds=rng.uniform(1, 400)),
                priority=rng.choice([0, 0, 10, -10]),
            )
        )
    Job.objects.bulk_create(rows)
    failed = Job.objects.create(
        queue="reports",
        task_path="testproject.demo.tasks.flaky_report",
        args=["sales"],
        state="buried",
        attempts=2,
        max_attempts=2,
        enqueued_at=now - timedelta(minutes=7),
        run_at=now - timedelta(minutes=6),
        started_at=now - timedelta(minutes=7),
        last_attempted_at=now - timedelta(minutes=6),
        finished_at=now - timedelta(minutes=6),
        worker_ids=["web-1:311:a1b2", "web-2:87:c3d4"],
        errors=[
            error(1, "web-1:311:a1b2", now - timedelta(minutes=7)),
            error(2, "web-2:87:c3d4", now - timedelta(minutes=6)),
        ],
        logs=[
            {"attempt": attempt, "text": OUTPUT, "truncated": False}
            for attempt in (1, 2)
        ],
    )
    for host, pid, beat in (("web-1", 311, 2), ("web-2", 87, 4), ("batch-1", 52, 300)):
        Worker.objects.create(
            id=f"{host}:{pid}:a1b2",
            hostname=host,
            pid=pid,
            queues=["reports"] if host == "batch-1" else [],
            concurrency=4,
            jobs_in_hand=rng.randint(0, 4),
            started_at=now - timedelta(hours=3),
            last_heartbeat=now - timedelta(seconds=beat),
        )
    for job in Job.objects.filter(state="ready", run_at__lte=now)[:6]:
        queue.claim(worker_id="web-1:311:a1b2", queues=[job.queue])
    queue.pause("reports")
    User.objects.create_superuser("docs", password="docs")
    return failed.pk


PIPELINE = "testproject.demo.pipeline"


def fill_workflow() -> int:
    """The talk's pipeline, 35 minutes into its 4 hours: the Merchant Center
    crawl found 24 pages, some fetched; AdWords done, Analytics running;
    match and what follows wait. Written through ``django_jobs.queue``, as a
    worker would (the crawl's pages as the running crawl enqueues them).
    Returns the workflow's id."""
    from django.utils import timezone

    from django_jobs import queue
    from django_jobs.models import Workflow
    from django_jobs.scope import After
    from django_jobs.workflows import workflow

    def insert(task: str, calls: list, **fields) -> list[int]:
        path = f"{PIPELINE}.{task}"
        return queue.insert(calls, task_path=path, queue="pipeline", **fields).ids

    def one(task: str, *upstream: int, names=None, anyway=False) -> int:
        names = names or ("",) * len(upstream)
        waits = After(upstream, names, anyway) if upstream else None
        return insert(task, [([], {})], workflow=flow.pk, after=waits)[0]

    with workflow("nightly sync", deadline=timedelta(hours=4)) as flow:
        crawls = (
            one("crawl_merchant_center"),
            one("crawl_adwords"),
            one("crawl_analytics"),
        )
        matched = one("match", *crawls, names=("merchant", "adwords", "analytics"))
        posted = one("post_bids", one("decide", one("analyze", matched)))
        one("report", posted, names=("posted",), anyway=True)
    worker = "web-1:311:a1b2"
    running = {
        job.pk: job
        for job in queue.claim(worker_id=worker, queues=["pipeline"], limit=3)
    }
    pages = [([n], {}) for n in range(24)]
    insert(
        "fetch_products_page", pages, workflow=flow.pk, step=crawls[0], parent=crawls[0]
    )
    for crawl in crawls[:2]:
        queue.complete(crawl, token=running[crawl].claim_token)
    fetched = queue.claim(worker_id=worker, queues=["pipeline"], limit=14)
    for page in fetched[:10]:
        queue.complete(page.pk, token=page.claim_token, return_value=10)
    started = timezone.now() - timedelta(minutes=35)
    Workflow.objects.filter(pk=flow.pk).update(
        created_at=started, deadline=started + timedelta(hours=4)
    )
    return flow.pk


def error(attempt: int, worker_id: str, at) -> dict:
    return {
        "exception_class_path": "builtins.RuntimeError",
        "traceback": TRACEBACK,
        "attempt": attempt,
        "worker_id": worker_id,
        "at": at.isoformat(),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"runserver did not listen on port {port} within {timeout}s")


def photograph(base: str, failed_pk: int, workflow_pk: int, only: list[str]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
        )
        page = browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(f"{base}/admin/login/")
        page.fill("#id_username", "docs")
        page.fill("#id_password", "docs")
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        page.evaluate("localStorage.setItem('django.admin.navSidebarIsOpen', 'false')")
        shots = {
            "admin-dashboard.png": "/admin/django_jobs/queue/",
            "admin-jobs.png": "/admin/django_jobs/job/",
            "admin-failed-job.png": f"/admin/django_jobs/job/{failed_pk}/change/",
            "admin-workflow.png": f"/admin/django_jobs/workflow/{workflow_pk}/change/",
        }
        unknown = set(only) - set(shots)
        if unknown:
            raise SystemExit(f"no such screenshot: {', '.join(sorted(unknown))}")
        for name, path in shots.items():
            if only and name not in only:
                continue
            page.goto(f"{base}{path}")
            page.screenshot(path=str(STATIC / name), full_page=name != "admin-jobs.png")
            print(f"wrote docs/_static/{name}")
        browser.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "testproject.settings",
            "DATABASE_URL": f"sqlite:///{tmp}/screenshots.sqlite3",
            "DEBUG": "true",
        }
        os.environ.update(env)
        sys.path.insert(0, str(ROOT))
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", verbosity=0)
        failed_pk = fill()
        workflow_pk = fill_workflow()
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"{port}"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for_port(port)
            photograph(f"http://127.0.0.1:{port}", failed_pk, workflow_pk, sys.argv[1:])
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
