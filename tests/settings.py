"""Settings for the test suite: the test project plus the fixture app ``tests``."""

import django

from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests"]

# Short intervals, so that tests of crashes and recovery take seconds.
TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        "OPTIONS": {
            "RETRY_BACKOFF": 0,
            "HEARTBEAT_INTERVAL": 0.5,
            "WORKER_TIMEOUT": 3,
            "RESCUE_INTERVAL": 0.5,
            "KILL_GRACE": 1,
            "IMPORT_GRACE": 3,
            # The async lane's queue (tests/lane_jobs.py); a short block limit.
            "ASYNC_QUEUES": {"lane": 100},
            "ASYNC_BLOCK_LIMIT": 1.5,
            # Done jobs move to the history at once (PostgreSQL), so that the
            # tests that run workers read jobs across the move.
            "HISTORY_DELAY": 0,
        },
    },
    "strict": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"RETRY_BACKOFF": 0, "DEFAULT_TTR": 30},
    },
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# django.tasks logs as "django.tasks"; the backport (Django 5.2) as "django_tasks".
TASKS_LOGGER = "django.tasks" if django.VERSION >= (6, 1) else "django_tasks"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {
        "django_jobs": {"handlers": ["stderr"], "level": "INFO"},
        TASKS_LOGGER: {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
