"""What the docs and messages tell people to install works.

``django-jobs`` on the package index is an unrelated package from 2010, so
``django-jobs[metrics]`` installs it (and no prometheus-client); and no
release of ``django-jobs-queue`` is on the index yet, so the pages that say
how to install it also say how to install it from a checkout or a Git URL.
"""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.rst"))]
MODULES = sorted((ROOT / "django_jobs").rglob("*.py"))


def test_nothing_names_an_extra_of_the_unrelated_django_jobs():
    named = [
        str(path.relative_to(ROOT))
        for path in [*PAGES, *MODULES]
        if "django-jobs[" in path.read_text()
    ]
    assert named == []


@pytest.mark.parametrize("page", ["README.md", "docs/installation.rst"])
def test_the_install_pages_say_how_to_install_before_the_first_release(page):
    text = (ROOT / page).read_text()
    assert "No release is on the package index yet" in text
    assert "pip install -e /path/to/checkout" in text
    assert '"django-jobs-queue @ git+https://' in text
