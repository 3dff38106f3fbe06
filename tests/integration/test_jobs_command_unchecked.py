"""``jobs`` runs no system checks (see docs/commands.rst): what a check would
have said first, the command says itself, in one line."""

import pytest
from django.core.management import CommandError, call_command, load_command_class
from django.test import override_settings

TASKS = {
    "default": {
        "BACKEND": "django_jobs.backend.JobsBackend",
        "OPTIONS": {"DATABASE": "elsewhere"},
    }
}


def test_jobs_runs_no_system_checks_and_still_takes_skip_checks():
    command = load_command_class("django_jobs", "jobs")
    assert command.requires_system_checks == []
    parser = command.create_parser("manage.py", "jobs")
    assert parser.parse_args(["--skip-checks", "health"]).action == "health"


@override_settings(TASKS=TASKS)
@pytest.mark.parametrize("action", ["health", "stats", "list"])
def test_a_database_not_in_databases(action):
    with pytest.raises(CommandError) as refused:
        call_command("jobs", action)
    assert str(refused.value) == (
        "TASKS['default']['OPTIONS']['DATABASE'] is 'elsewhere', which is not a "
        "key of DATABASES."
    )
