"""What the docs tell people to test with works, and what they warn about fails.

The docs used to advise Django's ImmediateBackend for tests; it refuses any
task that uses a django-jobs option. They now point at django_jobs.testing.
"""

import re
from pathlib import Path

import pytest
from django.test import override_settings

from django_jobs.compat import TASKS_MODULE, task
from django_jobs.testing import run_on_enqueue

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"
IMMEDIATE = {
    "default": {"BACKEND": f"{TASKS_MODULE}.backends.immediate.ImmediateBackend"}
}


def celery_eager_advice() -> str:
    text = (DOCS / "celery.rst").read_text()
    match = re.search(r"CELERY_TASK_ALWAYS_EAGER``.*?\n(.*?)\n   \* -", text, re.S)
    return match.group(1)


def test_the_celery_page_advises_the_testing_helpers():
    advice = celery_eager_advice()
    assert "django_jobs.testing.run_on_enqueue" in advice
    assert ":doc:`testing`" in advice
    assert "ImmediateBackend`` in test settings" not in advice


@override_settings(TASKS=IMMEDIATE)
def test_immediate_backend_refuses_our_options_as_the_docs_say():
    with pytest.raises(TypeError, match="unexpected keyword argument 'ttr'"):
        task(ttr=60)(print)
    assert "unexpected keyword argument 'ttr'" in (DOCS / "testing.rst").read_text()


def test_the_advised_helper_runs_a_task_with_every_option(db):
    from tests import helper_tasks

    with run_on_enqueue():
        result = helper_tasks.send_email.using(
            unique_key="receipt-1", expires=3600, ttr=20, max_attempts=4
        ).enqueue("a@example.com")
    assert result.return_value == "a@example.com"
