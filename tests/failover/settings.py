"""Settings of a failover run's workers and driver: the test project on the
private primary and standby, reached through one multi-host URL.

``DATABASE_URL`` names both servers and ``target_session_attrs=read-write``
(django-environ reads it into ``HOST="127.0.0.1,127.0.0.1"``,
``PORT="p1,p2"`` and ``OPTIONS``): libpq tries them in turn and keeps the one
that accepts writes, so after the switch every new connection finds the
promoted standby. The timings are short, but the reservations (``DEFAULT_TTR``)
and the silence that makes a worker presumed dead (``WORKER_TIMEOUT``) stay
longer than the switch, as they are in production.
"""

import os

import django

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, INSTALLED_APPS

if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
    raise RuntimeError("the failover test runs on PostgreSQL: set DATABASE_URL")

INSTALLED_APPS = [*INSTALLED_APPS, "tests.failover"]

DATABASES["default"].setdefault("OPTIONS", {}).update(
    {"application_name": f"failover-{os.getpid()}"}
)

TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        "OPTIONS": {
            "DEFAULT_TTR": 15,
            "RETRY_BACKOFF": 0,
            "RETRY_BACKOFF_MAX": 0,
            "HEARTBEAT_INTERVAL": 1,
            "WORKER_TIMEOUT": 20,
            "RESCUE_INTERVAL": 1,
            "KILL_GRACE": 1,
        },
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "worker": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "worker"},
    },
    "loggers": {
        "django_jobs": {"handlers": ["console"], "level": "INFO"},
        # The Tasks framework's own line per job start and end: the worker's
        # lines say the same.
        "django.tasks" if django.VERSION >= (6, 1) else "django_tasks": {
            "level": "WARNING"
        },
    },
}
