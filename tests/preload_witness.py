"""A task module that no app's ``tasks.py`` imports, and that says which
process imported it: a job run by a child that inherited the module from
the fork server returns another pid than its own."""

import os

from django_jobs.compat import task

IMPORTED_BY = os.getpid()


@task
def where() -> dict[str, int]:
    return {"pid": os.getpid(), "imported_by": IMPORTED_BY}
