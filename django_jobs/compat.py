"""Where the Tasks API comes from: Django's own ``django.tasks`` or the backport.

Django 6.1 ships the Tasks framework as ``django.tasks``. On Django 5.2 (the
long-term-support release) the same API comes from the ``django-tasks``
package, imported as ``django_tasks``; its exceptions carry an ``Error``
suffix, and its logger is named after the package. This module is the only
place in django-jobs that imports either, so that the rest of the code (and a
reusable app that must run on both) reads one set of names.

Django 6.0 has ``django.tasks`` but does not hand ``@task``'s extra keyword
arguments (``ttr``, ``max_attempts``...) to the backend's task class, so it
is not supported: the choice is 6.1 and later, or 5.2 with the backport.
"""

from __future__ import annotations

import django
from django.core.exceptions import ImproperlyConfigured

#: The oldest backport whose ``@task`` forwards extra keyword arguments to the
#: backend's ``task_class`` (what ``@task(ttr=...)`` needs).
BACKPORT_MINIMUM = (0, 12)

if django.VERSION >= (6, 1):
    from django.tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        Task,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import (
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        TASK_REFRESH_ATTRS,
        TaskError,
    )
    from django.tasks.exceptions import (
        InvalidTask,
        InvalidTaskBackend,
        TaskResultDoesNotExist,
        TaskResultMismatch,
    )
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.inspect import is_module_level_function

    #: The module users import ``task`` from; also the prefix of its backends'
    #: dotted paths and the name of its logger.
    TASKS_MODULE = "django.tasks"
elif django.VERSION[:2] == (5, 2):
    try:
        import django_tasks
    except ImportError:
        raise ImproperlyConfigured(
            "django-jobs on Django 5.2 needs the Tasks backport: "
            "pip install 'django-jobs-queue[django52]' (or 'django-tasks>=0.12')."
        ) from None
    import re
    from importlib.metadata import version

    installed = version("django-tasks")
    # Major and minor only: "0.12rc1" and "1.0.dev0" are read as 0.12 and 1.0.
    release = re.match(r"(\d+)\.(\d+)", installed)
    if release is None or tuple(map(int, release.groups())) < BACKPORT_MINIMUM:
        raise ImproperlyConfigured(
            f"django-jobs needs django-tasks 0.12 or later; {installed} is "
            "installed: pip install 'django-tasks>=0.12'."
        )
    # As importing django.tasks does on 6.1: the backends' system checks run
    # whether or not "django_tasks" is in INSTALLED_APPS.
    import django_tasks.checks
    from django_tasks import (
        DEFAULT_TASK_BACKEND_ALIAS,
        DEFAULT_TASK_QUEUE_NAME,
        TaskContext,
        TaskResult,
        TaskResultStatus,
        default_task_backend,
        task,
        task_backends,
    )
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import (
        TASK_MAX_PRIORITY,
        TASK_MIN_PRIORITY,
        TASK_REFRESH_ATTRS,
        Task,
        TaskError,
    )
    from django_tasks.exceptions import (
        InvalidTaskBackendError as InvalidTaskBackend,
    )
    from django_tasks.exceptions import InvalidTaskError as InvalidTask
    from django_tasks.exceptions import TaskResultDoesNotExist, TaskResultMismatch
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import is_module_level_function

    TASKS_MODULE = django_tasks.__name__
else:
    raise ImproperlyConfigured(
        f"django-jobs supports Django 5.2 (with django-tasks) and 6.1 or later; "
        f"this is Django {django.get_version()}."
    )

__all__ = [
    "BACKPORT_MINIMUM",
    "DEFAULT_TASK_BACKEND_ALIAS",
    "DEFAULT_TASK_QUEUE_NAME",
    "TASKS_MODULE",
    "TASK_MAX_PRIORITY",
    "TASK_MIN_PRIORITY",
    "TASK_REFRESH_ATTRS",
    "BaseTaskBackend",
    "InvalidTask",
    "InvalidTaskBackend",
    "Task",
    "TaskContext",
    "TaskError",
    "TaskResult",
    "TaskResultDoesNotExist",
    "TaskResultMismatch",
    "TaskResultStatus",
    "default_task_backend",
    "is_module_level_function",
    "task",
    "task_backends",
    "task_enqueued",
    "task_finished",
    "task_started",
]
