"""Settings for the benchmarks: the test project on a PostgreSQL database of its own."""

import os

os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/django_jobs_bench"
)

from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        "OPTIONS": {},
    }
}
LOGGING = {"version": 1, "disable_existing_loggers": False}
