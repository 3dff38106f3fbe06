"""Tasks in a module that no app's ``tasks.py`` imports (as in many projects).

Each import of this module is written down (``JOBS_IMPORT_LOG``), so that a
test can count which processes imported it.
"""

import os

from django_jobs.compat import task

if log := os.environ.get("JOBS_IMPORT_LOG"):
    with open(log, "a") as imports:
        imports.write(f"{os.getpid()}\n")


@task
def greet(name: str) -> str:
    return f"hello {name}"
