"""One module decides where the Tasks API comes from (Django 6.1+ or 5.2)."""

import ast
import importlib.metadata
import importlib.util
import sys
import types
from pathlib import Path

import django
import pytest
from django.core.exceptions import ImproperlyConfigured

from django_jobs import compat

PACKAGE = Path(compat.__file__).parent
TASKS_MODULES = ("django.tasks", "django_tasks")


def imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


def test_only_compat_imports_the_tasks_framework():
    offenders = {
        str(path.relative_to(PACKAGE)): sorted(
            name
            for name in imported_modules(path)
            if name.split(".")[0] == "django_tasks"
            or name == "django.tasks"
            or name.startswith("django.tasks.")
        )
        for path in PACKAGE.rglob("*.py")
        if path.name != "compat.py" or path.parent != PACKAGE
    }
    assert {path: names for path, names in offenders.items() if names} == {}


def test_the_api_comes_from_the_running_django():
    expected = "django.tasks" if django.VERSION >= (6, 1) else "django_tasks"
    assert expected == compat.TASKS_MODULE
    assert compat.Task.__module__.startswith(expected)
    assert compat.task_backends is sys.modules[expected].task_backends


def load_compat(monkeypatch, version: tuple) -> types.ModuleType:
    """A fresh copy of the compat module, as if Django were ``version``."""
    monkeypatch.setattr(django, "VERSION", version)
    spec = importlib.util.spec_from_file_location(
        "compat_under_test", PACKAGE / "compat.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_django_6_0_is_refused_with_what_is_supported(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match=r"this is Django 6\.0"):
        load_compat(monkeypatch, (6, 0, 0, "final", 0))


def test_django_5_2_without_the_backport_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "django_tasks", None)  # import fails
    with pytest.raises(ImproperlyConfigured) as refused:
        load_compat(monkeypatch, (5, 2, 0, "final", 0))
    assert "pip install 'django-jobs-queue[django52]'" in str(refused.value)


def test_django_5_2_with_an_old_backport_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "django_tasks", types.ModuleType("django_tasks"))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.11.0")
    with pytest.raises(ImproperlyConfigured, match=r"0\.11\.0 is installed"):
        load_compat(monkeypatch, (5, 2, 0, "final", 0))


def test_a_prerelease_of_a_good_backport_is_accepted(monkeypatch):
    monkeypatch.setitem(sys.modules, "django_tasks", types.ModuleType("django_tasks"))
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "0.13rc1")
    # Past the version check (no ImproperlyConfigured): the fake backport
    # has no API to import.
    with pytest.raises(ImportError):
        load_compat(monkeypatch, (5, 2, 0, "final", 0))
