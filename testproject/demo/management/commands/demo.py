"""Enqueue a few demo jobs the ways an application would, and show them."""

from django.core.management.base import BaseCommand
from django.db import transaction
from django.tasks import task_backends
from django.test import Client

from django_jobs.models import Job
from testproject.demo.models import Signup
from testproject.demo.tasks import flaky_report, slow_report


class Command(BaseCommand):
    help = "Enqueue demo jobs from a view, a signal handler and code, and list them."

    def handle(self, *args, **options):
        with transaction.atomic():
            signup = Signup.objects.create(email="ada@example.com")
        self.stdout.write(
            f"Signed up {signup}: its post_save handler enqueued a welcome email."
        )

        response = Client(HTTP_HOST="localhost").post("/add/", {"a": 2, "b": 40})
        self.stdout.write(
            f"POST /add/ enqueued job {response.json()['id']} from a view."
        )

        flaky_report.enqueue("sales")
        slow_report.enqueue(1.5)
        self.stdout.write("Enqueued a report that will fail and one that runs long.\n")

        self.stdout.write(f"{'id':>4}  {'task':<16} {'queue':<8} {'state':<9} status")
        backend = task_backends["default"]
        for job in Job.objects.order_by("-pk")[:4][::-1]:
            result = backend.get_result(str(job.pk))
            self.stdout.write(
                f"{job.pk:>4}  {job.task_name:<16} {job.queue:<8} "
                f"{job.display_state:<9} {result.status}"
            )
