"""Hooks in real worker processes, bad configuration in ``manage.py check``,
and nothing of OpenTelemetry imported where it is not installed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from django_jobs.models import Job
from django_jobs.states import State
from tests.acceptance.conftest import ROOT
from tests.acceptance.test_project_checks import make_project, run
from tests.traced_tasks import always_fails, traced_noop

pytestmark = [pytest.mark.timeout(180), pytest.mark.database_agnostic]
UNDER_TEST = "tests.hooks_under_test."


def hooked_worker(start_worker, tmp_path, *hooks: str, **variables: str):
    log = tmp_path / "hooks.jsonl"
    worker = start_worker(
        "--burst",
        DJANGO_SETTINGS_MODULE="tests.tracing_settings",
        HOOKS_UNDER_TEST=",".join(UNDER_TEST + name for name in hooks),
        HOOK_TEST_LOG=str(log),
        **variables,
    )
    return worker, log


def notes(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_hooks_are_called_in_order_around_each_job(start_worker, tmp_path):
    done, failing = traced_noop.enqueue(), always_fails.enqueue()
    worker, log = hooked_worker(start_worker, tmp_path, "Recording")
    assert worker.wait(120) == 0, worker.output
    seen = notes(log)
    runs = [(n["at"], n["job"]) for n in seen if n["at"].startswith("run")]
    assert runs.count(("run start", int(done.id))) == 1
    assert runs.index(("run start", int(done.id))) < runs.index(
        ("run end", int(done.id))
    )
    outcomes = {(n["job"], n["then"]) for n in seen if n["at"] == "outcome"}
    ok, bad = int(done.id), int(failing.id)
    assert outcomes == {(ok, "done"), (bad, "retried"), (bad, "buried")}
    supervisor = {n["pid"] for n in seen if n["at"] == "outcome"}
    children = {n["pid"] for n in seen if n["at"] == "run start"}
    assert supervisor == {worker.pid}
    assert worker.pid not in children


@pytest.mark.parametrize("bad", ["Raising", "Hanging", "Garbage", "Twice"])
def test_a_hook_that_misbehaves_changes_nothing(start_worker, tmp_path, bad):
    done, failing = traced_noop.enqueue(), always_fails.enqueue()
    worker, log = hooked_worker(start_worker, tmp_path, bad, "Recording")
    assert worker.wait(150) == 0, worker.output
    assert Job.objects.get(pk=done.id).state == State.DONE
    failed = Job.objects.get(pk=failing.id)
    assert failed.state == State.BURIED
    assert failed.attempts == 2
    assert f"hook {UNDER_TEST}{bad}" in worker.output
    # The well-behaved hook after it saw every run and outcome.
    ends = [n for n in notes(log) if n["at"] == "run end"]
    assert len(ends) == 3
    assert [n["ok"] for n in ends].count(True) == 1


def test_check_fails_for_a_hook_that_does_not_import(tmp_path):
    env = make_project(
        tmp_path,
        ["django.contrib.contenttypes", "django_jobs", "shop"],
        {"HOOKS": ["shop.hooks.Missing", "shop.apps.ShopConfig"]},
    )
    completed = run(env, "check", cwd=tmp_path)
    assert completed.returncode != 0
    assert "django_jobs.E017" in completed.stderr
    assert "'shop.hooks.Missing' does not import" in completed.stderr


def test_check_fails_for_an_unknown_tracing_value(tmp_path):
    # No app that declares tasks when it loads: a task declared then is
    # refused at once, before any check, with the same words.
    env = make_project(
        tmp_path,
        ["django.contrib.contenttypes", "django_jobs"],
        {"TRACING": "sideways"},
    )
    completed = run(env, "check", cwd=tmp_path)
    assert completed.returncode != 0
    assert "django_jobs.E003" in completed.stderr
    assert "OPTIONS['TRACING'] must be one of child, link, off" in completed.stderr


#: Import the backend and the worker, enqueue, and run a job's attempt in
#: this process; print the OpenTelemetry modules loaded.
PROBE = """
import sys
{block}
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from django_jobs.backend import JobsBackend
from django_jobs.worker import child, supervisor, zygote
from django_jobs.compat import task_backends
from shop.emails import send_receipt
send_receipt.enqueue(1)
task_backends["default"].hooks
print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
"""

BLOCK = """
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Blocker())
"""


@pytest.mark.parametrize(
    ("block", "options", "loaded"),
    [
        (BLOCK, {}, False),  # not installed
        ("", {"TRACING": "off"}, False),  # installed, turned off
        ("", {}, True),  # installed: the tracing hook uses it
    ],
)
def test_nothing_of_opentelemetry_is_imported_unless_used(
    tmp_path, block, options, loaded
):
    env = make_project(
        tmp_path, ["django.contrib.contenttypes", "django_jobs", "shop"], options
    )
    completed = subprocess.run(
        [sys.executable, "-c", PROBE.format(block=block)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    modules = eval(completed.stdout.strip().splitlines()[-1])
    assert bool(modules) is loaded, modules
    assert ROOT  # the project's checkout is on the path (make_project)
