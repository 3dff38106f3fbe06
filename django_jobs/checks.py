"""System checks for a JobsBackend's configuration.

Each message has a stable id, documented in docs/checks.rst. They run through
``backend.check()``, which Django's own tasks check calls for every backend,
so they work even when the app is missing from INSTALLED_APPS (E001).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DatabaseError, connections, router
from django.db.utils import load_backend

from .compat import InvalidTask, task_backends
from .key_checks import check_keyless_tasks
from .validation import QUEUE_NAME_MAX_LENGTH
from .vendors import SUPPORTED_VENDORS, server_too_old, worker_connections

if TYPE_CHECKING:
    from .backend import JobsBackend


def app_missing(backend: JobsBackend) -> str | None:
    """Why ``backend`` cannot work without the app, or None if it is installed.

    Without ``django_jobs`` in INSTALLED_APPS its models cannot even be
    imported (Django raises a RuntimeError), so this is asked before anything
    that needs them: by the checks (E001) and by the backend on enqueue.
    """
    if apps.is_installed("django_jobs"):
        return None
    return (
        f"TASKS[{backend.alias!r}] uses django_jobs.backend.JobsBackend, but "
        "'django_jobs' is not in INSTALLED_APPS."
    )


JOBS_ROUTER = "django_jobs.routers.JobsRouter"
APP_MISSING_HINT = "Add 'django_jobs' to INSTALLED_APPS and run migrate."


def check_backend(backend: JobsBackend) -> list[checks.CheckMessage]:
    messages: list[checks.CheckMessage] = []
    where = f"TASKS[{backend.alias!r}]"
    missing = app_missing(backend)
    if missing:
        messages.append(
            checks.Error(missing, hint=APP_MISSING_HINT, id="django_jobs.E001")
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
    if missing:  # the rest needs the models, which cannot be imported
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
    elif config.DATABASE is not None:
        from .models import Job

        reads = router.db_for_read(Job)
        # With several backends in several databases, the router sends the
        # admin to the first one and migrates the tables into each. (Named,
        # as settings name it: routers imports the backend, which imports us.)
        databases = {b.db for b in task_backends.all() if isinstance(b, type(backend))}
        elsewhere = reads in databases and any(
            f"{type(each).__module__}.{type(each).__qualname__}" == JOBS_ROUTER
            for each in router.routers
        )
        if reads != config.DATABASE and not elsewhere:
            messages.append(
                checks.Warning(
                    f"{where}['OPTIONS']['DATABASE'] is {config.DATABASE!r}, but "
                    f"the database routers send reads of jobs to "
                    f"{reads!r}: the admin would show another "
                    "database's jobs.",
                    hint=f"Add '{JOBS_ROUTER}' to DATABASE_ROUTERS.",
                    id="django_jobs.W001",
                )
            )
    if database_known:
        vendor = database_vendor(backend.db)
        if vendor not in SUPPORTED_VENDORS:
            messages.append(
                checks.Error(
                    f"{where} keeps its jobs in database {backend.db!r} "
                    f"(vendor {vendor!r}); django-jobs runs on PostgreSQL, "
                    "MariaDB, MySQL and SQLite only.",
                    hint="Point OPTIONS['DATABASE'] at a PostgreSQL, MariaDB "
                    "10.6+, MySQL 8.0.1+ or SQLite database.",
                    id="django_jobs.E008",
                )
            )
        elif vendor == "mysql":
            messages += check_server_version(backend.db, where)
    messages += check_hooks(config.HOOKS, where)
    messages += check_worker_database(backend, where)
    messages += check_connection_budget(backend, where)
    bad_queues = [
        name
        for name in backend.queues
        if not isinstance(name, str) or not name or len(name) > QUEUE_NAME_MAX_LENGTH
    ]
    unknown_lanes = [
        name
        for name in config.ASYNC_QUEUES
        if backend.queues and name not in backend.queues
    ]
    if unknown_lanes:
        messages.append(
            checks.Error(
                f"{where}['OPTIONS']['ASYNC_QUEUES'] names queue(s) not in "
                f"{where}['QUEUES']: {', '.join(map(repr, unknown_lanes))}.",
                hint="Add them to QUEUES, or remove them from ASYNC_QUEUES.",
                id="django_jobs.E016",
            )
        )
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
        messages += check_keyless_tasks(backend, config, where)
    return messages


def check_schedules(backend: JobsBackend) -> list[checks.CheckMessage]:
    """Every schedule in OPTIONS["SCHEDULES"] must be able to enqueue its job.

    The same test a worker makes at every tick (``schedules.scheduled_call``),
    so that a schedule that would fail there fails here, at deploy time.
    """
    from .schedules import InvalidSchedule, check_cron, check_time_zone

    messages: list[checks.CheckMessage] = []
    for name, spec in backend.config.SCHEDULES.items():
        where = f"TASKS[{backend.alias!r}]['OPTIONS']['SCHEDULES'][{name!r}]"
        for check, value, check_id in (
            (check_cron, spec["cron"], "django_jobs.E005"),
            (check_time_zone, spec.get("timezone", "UTC"), "django_jobs.E006"),
        ):
            try:
                check(value)
            except InvalidSchedule as exc:
                messages.append(checks.Error(f"{where}: {exc}", id=check_id))
        problem = schedule_call_problem(backend, spec)
        if problem:
            check_id, message = problem
            messages.append(checks.Error(f"{where}: {message}", id=check_id))
    return messages


def schedule_call_problem(
    backend: JobsBackend, spec: Mapping[str, Any]
) -> tuple[str, str] | None:
    """The check id and message of what stops a schedule enqueuing its job."""
    from .schedules import InvalidSchedule, scheduled_call

    try:
        scheduled_call(
            backend,
            spec["task"],
            queue=spec.get("queue", ""),
            priority=spec.get("priority"),
            args=spec.get("args"),
            kwargs=spec.get("kwargs"),
        )
    except InvalidSchedule as exc:  # the task cannot be imported or is no Task
        return "django_jobs.E007", str(exc)
    except InvalidTask as exc:  # a queue not in QUEUES, a priority out of range
        return "django_jobs.E009", str(exc)
    except TypeError as exc:  # arguments that do not fit, or are not JSON
        return "django_jobs.E010", str(exc)
    return None


def check_hooks(paths: tuple[str, ...], where: str) -> list[checks.CheckMessage]:
    """E017: each of OPTIONS['HOOKS'] imports and is a hook."""
    from .hooks import HookNotFound, load

    messages = []
    for path in paths:
        try:
            load(path)
        except HookNotFound as exc:
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS']['HOOKS']: {exc}",
                    hint="A hook is a dotted path to an object or a class with "
                    "any of before_enqueue, after_enqueue, around_run, on_outcome "
                    "(docs/observability.rst).",
                    id="django_jobs.E017",
                )
            )
        except Exception as exc:  # its class raised when made
            messages.append(
                checks.Error(
                    f"{where}['OPTIONS']['HOOKS']: {path!r} could not be made: "
                    f"{type(exc).__name__}: {exc}",
                    id="django_jobs.E017",
                )
            )
    return messages


def check_server_version(alias: str, where: str) -> list[checks.CheckMessage]:
    """E018: a MariaDB or MySQL server without ``SKIP LOCKED`` is refused.

    Only the server knows its version, so this connects; ``check`` also runs
    where the database is not reachable (a build step, an image without its
    server), and there it says nothing rather than fail the build: the
    worker's own ``check`` at start, connected, refuses the server.
    """
    connection = connections[alias]
    try:
        problem = server_too_old(connection)
    except DatabaseError:
        return []
    if problem is None:
        return []
    return [
        checks.Error(
            f"{where}: {problem}",
            hint="Upgrade the server, or keep the jobs in another database "
            "with OPTIONS['DATABASE'].",
            id="django_jobs.E018",
        )
    ]


def check_worker_database(backend: JobsBackend, where: str) -> list:
    """``WORKER_DATABASE`` names a PostgreSQL connection in DATABASES."""
    alias = backend.config.WORKER_DATABASE
    if alias is None:
        return []
    if alias not in settings.DATABASES:
        problem = "which is not a key of DATABASES"
    elif database_vendor(alias) != "postgresql":
        problem = f"a {database_vendor(alias)} database: a pooler is for PostgreSQL"
    else:
        return []
    return [
        checks.Error(
            f"{where}['OPTIONS']['WORKER_DATABASE'] is {alias!r}, {problem}.",
            hint="Name a direct connection (no pooler) to the jobs' database.",
            id="django_jobs.E011",
        )
    ]


def check_connection_budget(backend: JobsBackend, where: str) -> list:
    """A ``CONNECTION_BUDGET`` below what one worker of one child holds
    would refuse every worker at start: say so at deploy time instead.
    (A budget above the server's ``max_connections``, and one below the
    live fleet's minimum, need the server: ``runworker`` refuses them.)"""
    budget = backend.config.CONNECTION_BUDGET
    alias = backend.config.WORKER_DATABASE or backend.db
    if budget is None or alias not in settings.DATABASES:
        return []
    least = worker_connections(database_vendor(alias), 1)
    if budget >= least:
        return []
    return [
        checks.Error(
            f"{where}['OPTIONS']['CONNECTION_BUDGET'] is {budget}, below what one "
            f"worker holds at --concurrency 1 ({least} connections): no worker "
            "could start.",
            hint="Count 2 connections per child slot, plus the supervisor's "
            "and, on PostgreSQL, its LISTEN connection.",
            id="django_jobs.E015",
        )
    ]


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
