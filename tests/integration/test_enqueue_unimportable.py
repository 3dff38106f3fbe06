"""A task that no worker could import by its dotted path is refused at enqueue.

Defined in ``manage.py shell`` or a notebook (``__main__``), its path names a
module that is no file of the project: a worker would never run it. The
check is made once per task function: enqueue is hot.
"""

import sys
import types

import pytest

from django_jobs import queue, validation
from django_jobs.compat import InvalidTask, task
from django_jobs.exceptions import TaskNeverImportable
from django_jobs.models import Job
from django_jobs.testing import run_jobs
from tests import tasks
from tests.integration.conftest import write_by_hand

pytestmark = pytest.mark.django_db

ADVICE = (
    "Define the task in a module of your project (such as myapp/tasks.py) and "
    "import it from there; tasks defined in the shell or __main__ cannot be run "
    "by a worker."
)
SOURCE = """
from django_jobs.compat import task

@task
def send_welcome(user_id):
    return user_id
"""


def defined_in(module_name: str | None):
    """The task SOURCE defines when run with this ``__name__`` (None: none, as
    at ``manage.py shell``'s prompt)."""
    namespace = {} if module_name is None else {"__name__": module_name}
    exec(SOURCE, namespace)
    return namespace["send_welcome"]


@task
def defined_in_a_test_module(value):
    return value


@pytest.mark.parametrize(
    ("module_name", "why"),
    [
        ("__main__", "it was defined in __main__ (a script run directly, a notebook"),
        ("django.core.management.commands.shell", "defined in manage.py shell"),
        ("django.core.management.commands.shell.adhoc", "defined in manage.py shell"),
        (None, "it is not a dotted path to a module-level name"),
        ("__mp_main__", "it was defined in __mp_main__"),
    ],
)
def test_a_task_defined_outside_the_project_is_refused(module_name, why):
    send_welcome = defined_in(module_name)
    with pytest.raises(InvalidTask) as refused:
        send_welcome.enqueue(1)
    message = str(refused.value)
    assert message.startswith(f"Task '{send_welcome.module_path}': ")
    assert "a worker cannot run it" in message
    assert why in message
    assert message.endswith(ADVICE)
    with pytest.raises(InvalidTask, match="a worker cannot run it"):
        send_welcome.enqueue_many([((1,), {})])
    assert not Job.objects.exists()


def test_a_module_path_that_names_something_else_is_refused(monkeypatch):
    module = types.ModuleType("h4_rebound")
    monkeypatch.setitem(sys.modules, "h4_rebound", module)
    exec(SOURCE.replace("send_welcome", "greet"), module.__dict__)
    the_task = module.greet
    exec("def greet(user_id):\n    return user_id\n", module.__dict__)  # reused
    with pytest.raises(InvalidTask, match="its dotted path names a function, not"):
        the_task.enqueue(1)
    del module.greet
    with pytest.raises(InvalidTask, match=r"does not import here .*ImportError"):
        the_task.enqueue(1)
    assert not Job.objects.exists()


def test_a_reloaded_module_task_and_test_module_tasks_are_accepted(monkeypatch):
    module = types.ModuleType("h4_reloaded")
    monkeypatch.setitem(sys.modules, "h4_reloaded", module)
    exec(SOURCE, module.__dict__)
    before_reload = module.send_welcome
    exec(SOURCE, module.__dict__)  # importlib.reload() does the same
    assert module.send_welcome is not before_reload
    before_reload.enqueue(1)  # a worker imports the path all the same
    defined_in_a_test_module.enqueue(2)
    assert Job.objects.count() == 2


def test_the_path_is_imported_once_per_task_function(monkeypatch):
    imported = []

    def counting(path):
        imported.append(path)
        return real(path)

    real = validation.import_string
    monkeypatch.setattr(validation, "import_string", counting)
    monkeypatch.setattr(validation, "_imports_back", set())
    tasks.add.enqueue(1, 2)
    tasks.add.enqueue(3, 4)
    tasks.add.using(priority=5).enqueue(5, 6)  # a copy: the same function
    tasks.add.enqueue_many([((7, 8), {})])
    assert imported == ["tests.tasks.add"]
    assert Job.objects.count() == 4


def test_the_test_helpers_bury_such_a_row_as_a_worker_does():
    job = queue.enqueue(task_path="tests.tasks.noop", max_attempts=3)
    write_by_hand(job.pk, "task_path", "__main__.send_welcome")
    with pytest.raises(TaskNeverImportable, match="defined in __main__"):
        run_jobs()
    job.refresh_from_db()
    assert (job.state, job.attempts) == ("buried", 1)
    assert job.errors[0]["exception_class_path"].endswith(".TaskNeverImportable")
