"""Enqueue demo jobs the ways an application would, run a worker on them, report.

The worker is a real ``manage.py runworker`` process: its log lines show
each attempt as it happens. The command stops it once every demo job has
finished, then prints the jobs as the database has them, and how to see
them in the admin.
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

from django_jobs.models import Job
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

    def handle(self, *args, timeout, **options):
        ids = self.enqueue()
        self.stdout.write(self.style.MIGRATE_HEADING("\nStarting a worker"))
        self.stdout.flush()
        worker = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "runworker", "--concurrency", "2"],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            self.wait_for(ids, timeout)
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=60)
        self.report(ids)
        self.point_to_the_admin()

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

    def wait_for(self, ids: list[int], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while Job.objects.filter(pk__in=ids).exclude(state__in=FINISHED).exists():
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
            if job.state == "done":
                outcome = f"returned {job.return_value!r}"
            else:
                last = job.errors[-1]["traceback"].strip().splitlines()[-1]
                outcome = f"{len(job.errors)} error(s), last: {last}"
            self.stdout.write(
                f"  {job.pk:>4}  {job.task_name:<14} {job.state:<7} "
                f"{job.attempts}/{job.max_attempts:<3} {outcome}"
            )

    def point_to_the_admin(self) -> None:
        """Say how to see the demo's jobs in the admin, the job console."""
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
        self.stdout.write(
            "  (Jobs > Queues is the dashboard; run the demo again for more jobs)"
        )
