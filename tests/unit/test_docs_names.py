"""Every ``django_jobs.*`` name in the docs and the README exists.

The worker page once sent people to ``django_jobs.worker.child.touch()``,
which never existed (it is ``context.touch()``).
"""

import re
from importlib import import_module
from pathlib import Path

import pytest
from django.utils.module_loading import import_string

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
NAME = re.compile(r"django_jobs(?:\.[A-Za-z_]\w*)+")
#: Names that are not Python objects: check ids, permissions, logger names,
#: span attributes (docs/observability.rst).
NOT_OBJECTS = re.compile(
    r"django_jobs\.(?:[EW]\d{3}|(?:view|add|change|delete)_\w+|job|output"
    r"|attempt|max_attempts|priority|ttr|failure)$"
)


def names() -> list[tuple[str, str]]:
    found = set()
    for page in PAGES:
        for name in NAME.findall(page.read_text()):
            if not NOT_OBJECTS.match(name):
                found.add((page.name, name))
    return sorted(found)


@pytest.mark.parametrize(("page", "name"), names())
def test_the_name_exists(page, name):
    try:
        import_string(name)  # an object in a module
    except ImportError:
        import_module(name)  # or a module, such as django_jobs.queue
