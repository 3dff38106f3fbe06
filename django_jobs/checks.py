"""System checks for a JobsBackend's configuration.

Each message has a stable id, documented in docs/checks.rst. They run through
``backend.check()``, which Django's own tasks check calls for every backend,
so they work even when the app is missing from INSTALLED_APPS (E001).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import router
from django.db.utils import load_backend

from .validation import QUEUE_NAME_MAX_LENGTH

if TYPE_CHECKING:
    from .backend import JobsBackend

#: The claim needs UPDATE ... RETURNING, and FOR UPDATE SKIP LOCKED where
#: several processes claim at once; only these have been tested.
SUPPORTED_VENDORS = ("postgresql", "sqlite")


def check_backend(backend: JobsBackend) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    where = f"TASKS[{backend.alias!r}]"
    if not apps.is_installed("django_jobs"):
        messages.append(
            checks.Error(
                f"{where} uses django_jobs.backend.JobsBackend, but 'django_jobs' "
                "is not in INSTALLED_APPS.",
                hint="Add 'django_jobs' to INSTALLED_APPS and run migrate.",
                id="django_jobs.E001",
            )
        )
    try:
        config = backend.config
    except ImproperlyConfigured as exc:
        messages.append(
            checks.Error(
                f"{where}['OPTIONS'] is invalid: {exc}",
                hint="See the settings page of the django-jobs documentation.",
                id="django_jobs.E003",
            )
        )
        return messages
    database_known = config.DATABASE is None or config.DATABASE in settings.DATABASES
    if not database_known:
        messages.append(
            checks.Error(
                f"{where}['OPTIONS']['DATABASE'] is {config.DATABASE!r}, which is "
                "not a key of DATABASES.",
                id="django_jobs.E002",
            )
        )
    elif config.DATABASE is not None and apps.is_installed("django_jobs"):
        from .models import Job

        if router.db_for_read(Job) != config.DATABASE:
            messages.append(
                checks.Warning(
                    f"{where}['OPTIONS']['DATABASE'] is {config.DATABASE!r}, but "
                    f"the database routers send reads of jobs to "
                    f"{router.db_for_read(Job)!r}: the admin would show another "
                    "database's jobs.",
                    hint="Add 'django_jobs.routers.JobsRouter' to DATABASE_ROUTERS.",
                    id="django_jobs.W001",
                )
            )
    if database_known and apps.is_installed("django_jobs"):
        vendor = database_vendor(backend.db)
        if vendor not in SUPPORTED_VENDORS:
            messages.append(
                checks.Error(
                    f"{where} keeps its jobs in database {backend.db!r} "
                    f"(vendor {vendor!r}); django-jobs runs on PostgreSQL and "
                    "SQLite only.",
                    hint="Point OPTIONS['DATABASE'] at a PostgreSQL database.",
                    id="django_jobs.E008",
                )
            )
    bad_queues = [
        name
        for name in backend.queues
        if not isinstance(name, str) or not name or len(name) > QUEUE_NAME_MAX_LENGTH
    ]
    if bad_queues:
        messages.append(
            checks.Error(
                f"{where}['QUEUES'] holds invalid queue names: "
                f"{', '.join(map(repr, bad_queues))}.",
                hint=f"Queue names are non-empty strings of at most "
                f"{QUEUE_NAME_MAX_LENGTH} characters.",
                id="django_jobs.E004",
            )
        )
    if apps.ready:
        messages += check_schedules(backend)
    return messages


def check_schedules(backend: JobsBackend) -> list[checks.CheckMessage]:
    """Every schedule in OPTIONS["SCHEDULES"] must be able to run."""
    from .schedules import InvalidSchedule, check_cron, check_task, check_time_zone

    messages: list[checks.CheckMessage] = []
    for name, spec in backend.config.SCHEDULES.items():
        where = f"TASKS[{backend.alias!r}]['OPTIONS']['SCHEDULES'][{name!r}]"
        for check, value, check_id in (
            (check_cron, spec["cron"], "django_jobs.E005"),
            (check_time_zone, spec.get("timezone", "UTC"), "django_jobs.E006"),
            (check_task, spec["task"], "django_jobs.E007"),
        ):
            try:
                check(value)
            except InvalidSchedule as exc:
                messages.append(checks.Error(f"{where}: {exc}", id=check_id))
    return messages


def database_vendor(alias: str) -> str:
    """What kind of database ``alias`` is, without connecting to it.

    Read from the engine's class, so that engines built on PostgreSQL
    (PostGIS, instrumented wrappers) count as PostgreSQL.
    """
    engine = settings.DATABASES[alias].get("ENGINE", "")
    try:
        return load_backend(engine).DatabaseWrapper.vendor
    except (ImportError, ImproperlyConfigured):
        return engine
