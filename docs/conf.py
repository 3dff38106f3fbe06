"""Sphinx configuration for the django-jobs documentation.

The API reference is built with autodoc, which imports django_jobs: Django
is set up first with a minimal configuration of its own (no database is
used).
"""

import sys
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

settings.configure(
    INSTALLED_APPS=[
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.messages",
        "django.contrib.sessions",
        "django_jobs",
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
    TASKS={"default": {"BACKEND": "django_jobs.backend.JobsBackend"}},
    USE_TZ=True,
)
django.setup()

project = "django-jobs-queue"
author = "the django-jobs developers"
copyright = "2026, the django-jobs developers"
release = "0.1.0.dev0"

extensions = ["sphinx.ext.autodoc"]
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
exclude_patterns = ["_build"]
html_theme = "alabaster"
html_static_path = []
html_theme_options = {
    "description": "A database job queue for Django's Tasks framework",
    "fixed_sidebar": True,
}
