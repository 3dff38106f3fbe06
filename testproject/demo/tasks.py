"""The demo's tasks: ordinary functions under Django's own ``@task``."""

import time

from django.utils import timezone

from django_jobs.compat import task

from .models import Signup


@task(queue_name="emails", priority=10, ttr=30, max_attempts=5)
def send_welcome(signup_id: int) -> str:
    """Pretend to send a welcome email, and record that it went out."""
    signup = Signup.objects.get(pk=signup_id)
    Signup.objects.filter(pk=signup_id).update(welcomed_at=timezone.now())
    return f"welcomed {signup.email}"


@task(queue_name="reports")
def add(a: int, b: int) -> int:
    return a + b


@task(queue_name="reports", max_attempts=2)
def flaky_report(name: str) -> None:
    """Always fails: shows a retry with backoff, then a buried job."""
    raise RuntimeError(f"the {name} report's data source is down")


@task(queue_name="reports", ttr=10)
def slow_report(seconds: float) -> str:
    time.sleep(seconds)
    return f"slept {seconds}s"
