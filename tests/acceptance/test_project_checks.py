"""``manage.py check`` in a project of its own, as a user runs it.

A settings module of its own is the honest test: once django_jobs' models
are imported (as they are in this test process) Django cannot show what a
project that forgot INSTALLED_APPS sees.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.acceptance.conftest import ROOT

SETTINGS = """
SECRET_KEY = "not-secret"
USE_TZ = True
INSTALLED_APPS = [{apps}]
DATABASES = {{
    "default": {{"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
}}
TASKS = {{
    "default": {{
        "BACKEND": "django_jobs.backend.JobsBackend",
        "QUEUES": ["default", "emails"],
        "OPTIONS": {options},
    }}
}}
"""

# A project's app whose signal handlers enqueue: its ready() imports the
# module that declares the tasks, which is not called tasks.py.
APP_CONFIG = """
from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self):
        from . import emails  # noqa: F401
"""

EMAILS = """
from django_jobs.compat import task


@task(queue_name="emails", ttr=30, max_attempts=5)
def send_receipt(order_id: int) -> None:
    pass
"""


def make_project(
    path: Path, apps: list[str], options: dict | None = None
) -> dict[str, str]:
    """A project in ``path``: settings, the app ``shop``; returns its environment."""
    (path / "shop").mkdir()
    (path / "shop" / "__init__.py").write_text("")
    (path / "shop" / "apps.py").write_text(APP_CONFIG)
    (path / "shop" / "emails.py").write_text(EMAILS)
    (path / "project_settings.py").write_text(
        SETTINGS.format(apps=", ".join(map(repr, apps)), options=options or {})
    )
    return {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{path}:{ROOT}",
        "DJANGO_SETTINGS_MODULE": "project_settings",
    }


def run(env: dict[str, str], *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_reports_e001_when_the_app_is_not_installed(tmp_path):
    env = make_project(tmp_path, ["django.contrib.contenttypes", "shop"])
    completed = run(env, "check", cwd=tmp_path)
    assert completed.returncode != 0
    assert "RuntimeError" not in completed.stderr
    assert "django_jobs.E001" in completed.stderr
    assert "'django_jobs' is not in INSTALLED_APPS" in completed.stderr
    assert "Add 'django_jobs' to INSTALLED_APPS and run migrate" in completed.stderr


def test_enqueue_without_the_app_says_what_to_do(tmp_path):
    env = make_project(tmp_path, ["django.contrib.contenttypes", "shop"])
    code = "from shop.emails import send_receipt; send_receipt.enqueue(1)"
    completed = run(env, "shell", "-c", code, cwd=tmp_path)
    assert completed.returncode != 0
    last = completed.stderr.strip().splitlines()[-1]
    assert last.startswith("django.core.exceptions.ImproperlyConfigured: TASKS")
    assert "'django_jobs' is not in INSTALLED_APPS" in last
    assert "isn't in an application in INSTALLED_APPS" not in completed.stderr


def test_check_passes_once_the_app_is_installed(tmp_path):
    env = make_project(tmp_path, ["django.contrib.contenttypes", "django_jobs", "shop"])
    completed = run(env, "check", cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert "no issues" in completed.stdout


@pytest.mark.parametrize(
    ("schedule", "check_id", "words"),
    [
        (
            {"queue": "reports"},
            "django_jobs.E009",
            "queue 'reports' is not one of this backend's QUEUES",
        ),
        ({"args": [1, 2]}, "django_jobs.E010", "cannot be called with these"),
        ({"kwargs": {"user": 1}}, "django_jobs.E010", "unexpected keyword"),
    ],
)
def test_check_reports_schedules_that_cannot_enqueue(
    tmp_path, schedule, check_id, words
):
    spec = {
        "task": "shop.emails.send_receipt",
        "cron": "0 * * * *",
        "args": [1],
        **schedule,
    }
    env = make_project(
        tmp_path,
        ["django.contrib.contenttypes", "django_jobs", "shop"],
        {"SCHEDULES": {"receipts": spec}},
    )
    completed = run(env, "check", cwd=tmp_path)
    assert completed.returncode != 0
    assert check_id in completed.stderr
    assert words in completed.stderr
    assert "['SCHEDULES']['receipts']" in completed.stderr
