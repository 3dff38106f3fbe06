"""A database router that keeps django_jobs' tables on the backends' DATABASE."""

from __future__ import annotations

from typing import Any

from .compat import task_backends


def jobs_database() -> str | None:
    """The DATABASE option of the first JobsBackend in TASKS, if any."""
    from .backend import JobsBackend

    for backend in task_backends.all():
        if isinstance(backend, JobsBackend):
            return backend.config.DATABASE
    return None


def jobs_databases() -> set[str]:
    """Every database that some JobsBackend in TASKS keeps its jobs in."""
    from .backend import JobsBackend

    return {
        backend.db
        for backend in task_backends.all()
        if isinstance(backend, JobsBackend)
    }


class JobsRouter:
    """Reads, writes and migrations of django_jobs models go to OPTIONS["DATABASE"].

    Only needed when the jobs live in a database other than the default one;
    add it before your own routers in DATABASE_ROUTERS. With several
    backends, each in a database of its own, the tables are migrated into
    each of them, and the admin reads the first backend's (the workers and
    the backends name their database in every query, so they need no
    router).
    """

    app_label = "django_jobs"

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        if model._meta.app_label == self.app_label:
            return jobs_database()
        return None

    db_for_write = db_for_read

    def allow_migrate(
        self, db: str, app_label: str, model_name: str | None = None, **hints: Any
    ) -> bool | None:
        if app_label == self.app_label:
            databases = jobs_databases()
            return not databases or db in databases
        return None
