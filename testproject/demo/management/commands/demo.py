"""Enqueue demo jobs the ways an application would, run a worker on them, report.

Besides single jobs (from a signal handler, a view, a retry, a delay), it
enqueues the talk's pipeline, the workflow "nightly sync" (see
``testproject/demo/pipeline.py``). The worker is a real ``manage.py
runworker`` process: its log lines show each attempt as it happens. The
command stops it once every demo job has finished and the workflow has
ended, then prints them as the database has them, and how to see them in
the admin.
"""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse

from django_jobs.models import Job, Workflow
from testproject.demo import pipeline
from testproject.demo.models import Signup
from testproject.demo.tasks import flaky_report, slow_report

MANAGE_PY = Path(__file__).resolve().parents[4] / "manage.py"
FINISHED = ("done", "buried")
DEMO_USER = DEMO_PASSWORD = "demo"


class Command(BaseCommand):
    help = "Enqueue a mix of demo jobs, run a worker on them and show what happened."

    def add_arguments(self, parser):
        parser.add_argument(
            "--timeout", type=float, default=90, help="Seconds to wait (default 90)."
        )
        parser.add_argument(
            "--outage",
            type=float,
            default=pipeline.OUTAGE,
            help="The chance that an attempt of the workflow's AdWords crawl fails "
            f"(default {pipeline.OUTAGE}; 1: the workflow fails, 0: it succeeds).",
        )

    def handle(self, *args, timeout, outage, **options):
        ids = self.enqueue()
        flow = self.enqueue_workflow(outage)
        self.stdout.write(self.style.MIGRATE_HEADING("\nStarting a worker"))
        self.stdout.flush()
        worker = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "runworker", "--concurrency", "4"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self.wait_for(ids, flow, timeout)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        self.report(ids)
        self.report_workflow(flow)
        self.point_to_the_admin(flow)

    def enqueue(self) -> list[int]:
        self.stdout.write(self.style.MIGRATE_HEADING("Enqueuing demo jobs"))
        before = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
        with transaction.atomic():
            signup = Signup.objects.create(email="ada@example.com")
        self.stdout.write(
            f"  a signup ({signup}): its post_save handler enqueues a welcome"
        )
        response = Client(HTTP_HOST="localhost").post("/add/", {"a": 2, "b": 40})
        self.stdout.write(f"  POST /add/ from a view: job {response.json()['id']}")
        flaky_report.enqueue("sales")
        self.stdout.write("  a report that fails: retried, then buried")
        slow_report.using(run_after=timedelta(seconds=3)).enqueue(0.5)
        self.stdout.write("  a report delayed by 3 seconds")
        slow_report.enqueue(2.5)
        self.stdout.write("  a report that runs for 2.5 seconds")
        return list(Job.objects.filter(pk__gt=before).values_list("pk", flat=True))

    def enqueue_workflow(self, outage: float) -> Workflow:
        flow, _ = pipeline.nightly_sync(outage=outage)
        minutes = int(pipeline.DEADLINE.total_seconds() // 60)
        self.stdout.write(
            f"  the workflow {flow.name!r} (#{flow.pk}), the talk's pipeline with "
            f"fake sources: 3 crawls in parallel, one fanning out to pages, then "
            f"match, analyze, decide, post, and a report that runs anyway; its "
            f"deadline is {minutes} minutes (the talk's 4 hours, scaled down)"
        )
        return flow

    def wait_for(self, ids: list[int], flow: Workflow, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while (
            Job.objects.filter(pk__in=ids).exclude(state__in=FINISHED).exists()
            or Workflow.objects.filter(pk=flow.pk, state="running").exists()
        ):
            if time.monotonic() > deadline:
                raise CommandError(f"the demo jobs did not finish within {timeout}s")
            time.sleep(0.25)
            connection.close()  # see the worker's writes afresh (SQLite)

    def report(self, ids: list[int]) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING("\nWhat happened"))
        self.stdout.write(
            f"  {'id':>4}  {'task':<14} {'state':<7} {'tries':<5} outcome"
        )
        for job in Job.objects.filter(pk__in=ids).order_by("pk"):
            self.stdout.write(
                f"  {job.pk:>4}  {job.task_name:<14} {job.state:<7} "
                f"{job.attempts}/{job.max_attempts:<3} {outcome(job)}"
            )

    def report_workflow(self, flow: Workflow) -> None:
        """The workflow's end, and each of its steps (the pages as one line)."""
        flow.refresh_from_db()
        took = (flow.finished_at - flow.created_at).total_seconds()
        self.stdout.write(
            self.style.MIGRATE_HEADING(f"\nThe workflow {flow.name!r} (#{flow.pk})")
        )
        self.stdout.write(f"  {flow.state} in {took:.1f}s")
        if flow.reason:
            self.stdout.write(f"  why: {flow.reason}")
        jobs = list(Job.objects.filter(workflow=flow).order_by("pk"))
        pages = [job for job in jobs if job.task_name == "fetch_products_page"]
        for job in jobs:
            if job in pages:
                continue
            self.stdout.write(
                f"  {job.pk:>4}  {job.task_name:<22} {job.state:<7} "
                f"{job.attempts}/{job.max_attempts:<3} {outcome(job)}"
            )
            if job.task_name == "crawl_merchant_center" and pages:
                done = sum(1 for page in pages if page.state == "done")
                self.stdout.write(
                    f"  {pages[0].pk:>4}+ {'fetch_products_page':<22} {len(pages)} "
                    f"pages that crawl enqueued (fan-out), {done} done"
                )

    def point_to_the_admin(self, flow: Workflow) -> None:
        """Say how to see the demo's jobs in the admin, the job console, and
        the workflow's page there (its graph)."""
        self.stdout.write(self.style.MIGRATE_HEADING("\nSee them in the admin"))
        if connection.vendor == "sqlite":
            # A known password is fine for this local SQLite demo only; a
            # real site creates its users with createsuperuser.
            User = get_user_model()
            if not User.objects.filter(username=DEMO_USER).exists():
                User.objects.create_superuser(DEMO_USER, password=DEMO_PASSWORD)
            login = f"log in as {DEMO_USER!r}, password {DEMO_PASSWORD!r}"
        else:
            login = "log in as a user made with: python manage.py createsuperuser"
        self.stdout.write("  python manage.py runserver")
        self.stdout.write(f"  then open http://127.0.0.1:8000/admin/ and {login}")
        page = reverse("admin:django_jobs_workflow_change", args=[flow.pk])
        self.stdout.write(
            f"  the workflow's page, with its graph: http://127.0.0.1:8000{page}"
        )
        self.stdout.write(
            "  (Jobs > Queues is the dashboard, Jobs > Workflows the workflows; "
            "run the demo again for more jobs)"
        )


def outcome(job: Job, width: int = 100) -> str:
    """What a job returned (lists as their length, cut short), or its errors."""
    if job.state == "done":
        value = job.return_value
        if isinstance(value, dict):
            value = {key: brief(item) for key, item in value.items()}
        text = f"returned {brief(value)!r}"
        return text if len(text) <= width else text[: width - 3] + "..."
    if not job.errors:
        return job.state
    last = job.errors[-1]["traceback"].strip().splitlines()[-1]
    text = f"{len(job.errors)} error(s), last: {last}"
    return text if len(text) <= width else text[: width - 3] + "..."


def brief(value):
    """A long list as its length: the pipeline's steps return hundreds of rows."""
    if isinstance(value, list) and len(value) > 3:
        return f"{len(value)} items"
    return value
