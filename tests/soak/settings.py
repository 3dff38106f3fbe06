"""Settings of a soak's workers and driver: the test project on the private
PostgreSQL or MariaDB that the driver started (its URL in ``DATABASE_URL``).

The backend's OPTIONS are in ``timing.py``. Each process names its database
connections ``soak-<pid>``, so that the chaos loop can find (and terminate)
the connections of one worker's supervisor.
"""

import os

from testproject.settings import *  # noqa: F403
from testproject.settings import DATABASES, INSTALLED_APPS

from .timing import OPTIONS

ENGINE = DATABASES["default"]["ENGINE"]
if ENGINE not in ("django.db.backends.postgresql", "django.db.backends.mysql"):
    raise RuntimeError(
        "the soak runs on PostgreSQL or MariaDB: set DATABASE_URL=postgres://... "
        "or mysql://..."
    )

INSTALLED_APPS = [*INSTALLED_APPS, "tests.soak"]

if ENGINE == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"application_name": f"soak-{os.getpid()}", "connect_timeout": 2}
    )
else:
    # MariaDB names no connection: the chaos finds a process's connections
    # by their client ports (instance.tcp_ports).
    DATABASES["default"].setdefault("OPTIONS", {}).update({"connect_timeout": 2})

TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        "OPTIONS": OPTIONS,
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
    },
}
