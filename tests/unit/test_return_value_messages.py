"""What a job's return value becomes, and the words when it cannot be stored."""

import datetime
import decimal
import uuid
from collections.abc import Mapping
from pathlib import Path

import pytest

from django_jobs.attempts import Kind, Next, follows
from django_jobs.exceptions import OutcomeNotStored, ReturnValueNotStored
from django_jobs.returns import stored_return_value
from django_jobs.worker.failures import Failure
from tests.models import Record

PATH = "shop.tasks.charge"


@pytest.mark.parametrize(
    ("value", "what", "advice"),
    [
        (decimal.Decimal("1.5"), "is a Decimal", "Return str(value) instead"),
        (datetime.datetime(2030, 1, 1), "is a datetime", "value.isoformat()"),
        (datetime.date(2030, 1, 1), "is a date", "value.isoformat()"),
        (datetime.timedelta(1), "is a timedelta", "value.total_seconds()"),
        (uuid.UUID(int=1), "is a UUID", "Return str(value) instead"),
        (Record(pk=3), "is a Record", "Return its pk instead"),
        ({1, 2}, "is a set", "Return a list instead"),
        (Path("/tmp"), "is a PosixPath", "Return str(value) instead"),
        (b"\xff", "cannot be stored as JSON (bytes that are not UTF-8)", "base64"),
        (object(), "is an object", "Return plain JSON data instead"),
        ({1: "a"}, "cannot be stored as JSON (key 1 is not a string)", "plain JSON"),
        (
            float("nan"),
            "cannot be stored as JSON (nan is not a finite",
            "Return plain JSON data",
        ),
    ],
)
def test_the_message_names_the_type_and_what_to_return(value, what, advice):
    with pytest.raises(ReturnValueNotStored) as raised:
        stored_return_value(value, PATH)
    message = str(raised.value)
    assert message.startswith(f"Task {PATH!r}: the return value {what}")
    assert advice in message
    assert message.endswith("another attempt would do it again.")
    assert ".;" not in message


def test_it_is_an_outcome_not_stored_and_a_type_error():
    assert issubclass(ReturnValueNotStored, OutcomeNotStored)
    assert issubclass(ReturnValueNotStored, TypeError)


def test_where_inside_the_value():
    with pytest.raises(ReturnValueNotStored, match=r"value\['a'\]\[1\] is a Decimal"):
        stored_return_value({"a": [1, decimal.Decimal(2)]}, PATH)


def test_a_value_that_fails_to_convert_is_not_stored_either():
    class Broken(Mapping):
        def __getitem__(self, key):
            raise KeyError(key)

        def __iter__(self):
            raise RuntimeError("no keys today")

        def __len__(self):
            return 1

    with pytest.raises(ReturnValueNotStored, match="raised RuntimeError: no keys"):
        stored_return_value(Broken(), PATH)


def test_json_comes_back_as_stored():
    assert stored_return_value((1, "a\x00", {"k": None}), PATH) == [
        1,
        "a\\x00",
        {"k": None},
    ]


def test_a_child_reports_only_how_its_job_ended():
    assert Kind.from_child("UNSTORABLE") is Kind.UNSTORABLE
    assert Kind.from_child("NOT_IMPORTABLE") is Kind.NOT_IMPORTABLE
    assert Kind.from_child("CANCELLED") is Kind.RAISED  # the supervisor's to say
    assert Kind.from_child(None) is Kind.RAISED
    assert follows(Kind.UNSTORABLE, import_grace_over=False) is Next.BURY
    assert Kind.UNSTORABLE.attempted


def test_the_log_line_has_no_stray_full_stop():
    failure = Failure(None, Kind.RAISED, "p", "Traceback\nValueError: no.\n")
    assert failure.summary() == "ValueError: no"
