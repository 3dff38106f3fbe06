"""The rule for task paths that no worker can import, after any deploy."""

import pytest

from django_jobs.exceptions import TaskNeverImportable, TaskNotImportable
from django_jobs.task import never_importable, task_at


@pytest.mark.parametrize(
    "path",
    [
        "tests.tasks.add",
        "app_not_deployed_yet.tasks.f",  # a deploy may bring it
        "tests.tasks.not_written_yet",  # a deploy may add the name
        "django.core.management.commands.shellfish.f",
        "main.f",
    ],
)
def test_paths_a_deploy_may_bring(path):
    assert never_importable(path) is None


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("__main__.send", "defined in __main__"),
        ("__mp_main__.send", "defined in __mp_main__"),
        ("__console__.send", "defined in __console__"),
        ("django.core.management.commands.shell.send", "manage.py shell"),
        ("django.core.management.commands.shell.adhoc.send", "manage.py shell"),
        ("None.send", "not a dotted path"),  # typed at the shell's prompt
        ("send", "not a dotted path"),
        ("", "not a dotted path"),
        ("a..b", "not a dotted path"),
        ("shop.tasks.<locals>.send", "not a dotted path"),
        ("shop.tasks.<lambda>", "not a dotted path"),
        ("not a path", "not a dotted path"),
        ("shop.class.send", "not a dotted path"),
        (" shop.tasks.send", "not a dotted path"),
    ],
)
def test_paths_no_deploy_can_bring(path, why):
    assert why in never_importable(path)
    with pytest.raises(TaskNeverImportable, match="can never be imported by a wor"):
        task_at(path)


def test_a_missing_module_is_only_not_importable_yet():
    with pytest.raises(TaskNotImportable) as raised:
        task_at("app_not_deployed_yet.tasks.f")
    assert not isinstance(raised.value, TaskNeverImportable)
