"""The system check of limits per key (``django_jobs.W002``).

A queue whose settings give it limits per key (``OPTIONS["QUEUE_LIMITS"]``)
should only hold jobs that have a key: a task without ``limit_key`` routed
there runs its jobs without any limit per key. The check looks at the tasks
of the installed apps' ``tasks`` modules (imported as a worker imports them);
limits set in the admin or with ``queue.configure`` are not known to it (the
claim logs a warning when it meets such jobs).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from django.apps import apps
from django.core import checks
from django.utils.module_loading import autodiscover_modules

from .task import JobTask

if TYPE_CHECKING:
    from .backend import JobsBackend
    from .conf import JobsOptions


def check_keyless_tasks(
    backend: JobsBackend, config: JobsOptions, where: str
) -> list[checks.CheckMessage]:
    keyed = {
        name
        for name, limits in config.QUEUE_LIMITS.items()
        if limits.get("key_concurrency") is not None
        or limits.get("key_rate_limit") is not None
    }
    if not keyed:
        return []
    autodiscover_modules("tasks")
    keyless = sorted(
        task.module_path
        for task in _app_tasks()
        if task.backend == backend.alias
        and task.queue_name in keyed
        and task.limit_key is None
    )
    if not keyless:
        return []
    return [
        checks.Warning(
            f"{where}['OPTIONS']['QUEUE_LIMITS'] gives limits per key to "
            f"queues that tasks without a limit_key use: {', '.join(keyless)}. "
            "No limit per key holds for their jobs.",
            hint="Name the argument that is their key: @task(limit_key=...).",
            id="django_jobs.W002",
        )
    ]


def _app_tasks() -> list[JobTask]:
    """The tasks defined in the installed apps' ``tasks`` modules."""
    found = []
    for config in apps.get_app_configs():
        module = sys.modules.get(f"{config.name}.tasks")
        if module is not None:
            found += [v for v in vars(module).values() if isinstance(v, JobTask)]
    return found
