"""Settings for the test suite: the test project plus the fixture app ``tests``."""

from testproject.settings import *  # noqa: F403
from testproject.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests"]

TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": [],
        "OPTIONS": {"RETRY_BACKOFF": 0},
    },
    "strict": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {"RETRY_BACKOFF": 0, "DEFAULT_TTR": 30},
    },
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING = {"version": 1, "disable_existing_loggers": False}
