"""Settings for the benchmarks: the test project on a PostgreSQL database of its own."""

import os

os.environ.setdefault(
    "DATABASE_URL", "postgres://postgres@127.0.0.1:5432/django_jobs_bench"
)
os.environ.setdefault("DEBUG", "false")

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench"]
# A second connection to the same database, for latency.py's database floor:
# a worker claims on a connection of its own.
# Connections kept for a child's life (as the peers' Django settings do): a
# child that runs several jobs opens one, not one per job.
DATABASES["default"]["CONN_MAX_AGE"] = 600
DATABASES = {**DATABASES, "supervisor": {**DATABASES["default"]}}
TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        # JOBS_CAPTURE=0 measures the worker without output capture.
        "OPTIONS": {"CAPTURE_OUTPUT": os.environ.get("JOBS_CAPTURE", "1") == "1"},
    }
}
# The worker's own lines (start, stop with its CPU and memory figures) but
# not one line per job, as on a busy production site.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_jobs.worker": {"handlers": ["stderr"], "level": "INFO"},
        "django_jobs.job": {"handlers": ["stderr"], "level": "WARNING"},
    },
}
