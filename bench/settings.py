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
# The async lane's queue for bench/async_lane.py: its jobs run up to
# JOBS_LANE_K at once per child (a worker started with --queue crawl). Set
# only where this django_jobs has the option, so the other benchmarks run
# on a checkout without the lane.
LANE_QUEUE = "crawl"


def _lane_options() -> dict:
    from django_jobs.conf import JobsOptions

    if "ASYNC_QUEUES" not in JobsOptions.__dataclass_fields__:
        return {}
    return {"ASYNC_QUEUES": {LANE_QUEUE: int(os.environ.get("JOBS_LANE_K", "100"))}}


TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        "OPTIONS": {
            # JOBS_CAPTURE=0 measures the worker without output capture.
            "CAPTURE_OUTPUT": os.environ.get("JOBS_CAPTURE", "1") == "1",
            **_lane_options(),
        },
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
# bench/databases.py's statement count: with DEBUG on, every process of a
# worker (the children inherit the handler at fork) appends one short line
# per statement Django sends (its SQL's repr, so one line),
# BEGIN/COMMIT/ROLLBACK included.
if os.environ.get("BENCH_STATEMENT_LOG"):
    LOGGING["formatters"] = {"statement": {"format": "%(process)d %(sql).40r"}}
    LOGGING["handlers"]["statements"] = {
        "class": "logging.FileHandler",
        "filename": os.environ["BENCH_STATEMENT_LOG"],
        "formatter": "statement",
    }
    LOGGING["loggers"]["django.db.backends"] = {
        "handlers": ["statements"],
        "level": "DEBUG",
        "propagate": False,
    }
