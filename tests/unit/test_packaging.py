"""The distribution's name: free on the package index, and the one the docs use.

``pip install django-jobs`` installs an unrelated job board from 2010, so the
distribution has a name of its own; the import name stays ``django_jobs``.
"""

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
NAME = "django-jobs-queue"


def metadata_name() -> str:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return config["metadata"]["name"]


def install_commands(path: Path) -> list[str]:
    return re.findall(r"pip install ([\w.\-\[\]]+)\s*$", path.read_text(), re.M)


def test_the_distribution_is_not_the_unrelated_django_jobs():
    assert metadata_name() == NAME


def test_readme_and_docs_install_the_distribution_by_its_name():
    for page in ("README.md", "docs/installation.rst"):
        assert install_commands(ROOT / page) == [NAME], page


def test_the_package_imported_is_still_django_jobs():
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert config["options.packages.find"]["include"].split() == [
        "django_jobs",
        "django_jobs.*",
    ]
