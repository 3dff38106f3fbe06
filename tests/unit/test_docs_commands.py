"""The API reference lists every option of runworker and every jobs subcommand."""

import argparse
from pathlib import Path

from django.core.management import load_command_class
from django.core.management.base import BaseCommand

API = Path(__file__).resolve().parent.parent.parent / "docs" / "api.rst"
DJANGOS = {
    option
    for action in BaseCommand().create_parser("manage.py", "x")._actions
    for option in action.option_strings
}


def test_every_runworker_option_is_in_the_api_reference():
    parser = load_command_class("django_jobs", "runworker").create_parser(
        "manage.py", "runworker"
    )
    ours = {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option not in DJANGOS
    }
    text = API.read_text()
    assert ours
    assert [option for option in sorted(ours) if f"``{option}" not in text] == []


def test_every_jobs_subcommand_is_in_the_api_reference():
    parser = load_command_class("django_jobs", "jobs").create_parser(
        "manage.py", "jobs"
    )
    (subparsers,) = (
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    )
    text = API.read_text()
    assert [name for name in subparsers.choices if f"``{name}``" not in text] == []
