"""django-jobs' log messages are one line each, whatever libpq says.

libpq spreads an error over several lines (a connection failure: one per
address tried, and a hint); a log shipper reads each line as a record. The
``django_jobs`` loggers flatten every message (the traceback, written by
the handler's formatter, stays as it is).
"""

import logging
import re
from pathlib import Path

import psycopg
import pytest

import django_jobs
from django_jobs.logging import LOGGERS, OneLine

PACKAGE = Path(django_jobs.__file__).parent
GET_LOGGER = re.compile(r'getLogger\("(django_jobs[\w.]*)"\)')


@pytest.fixture
def refused() -> psycopg.OperationalError:
    """A real libpq error: a connection to a port where nothing listens."""
    with pytest.raises(psycopg.OperationalError) as error:
        psycopg.connect("host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    assert "\n" in str(error.value)  # what the filter is for
    return error.value


def test_a_database_error_in_a_worker_message_is_one_line(caplog, refused):
    with caplog.at_level(logging.INFO, logger="django_jobs"):
        logging.getLogger("django_jobs.worker").warning(
            "cannot claim jobs (%s); will try again", refused
        )
    (record,) = caplog.records
    message = record.getMessage()
    assert "\n" not in message
    assert message.startswith("cannot claim jobs (connection failed")
    assert message.endswith("); will try again")


def test_a_traceback_stays_on_its_lines(caplog, refused):
    with caplog.at_level(logging.INFO, logger="django_jobs"):
        try:
            raise refused
        except psycopg.OperationalError:
            logging.getLogger("django_jobs.queue").exception("a duty failed:\n%s", 1)
    (record,) = caplog.records
    assert record.getMessage() == "a duty failed: 1"
    assert "Traceback (most recent call last)" in caplog.text
    assert len(caplog.text.splitlines()) > 3


def test_every_logger_of_the_package_has_the_filter():
    used = set()
    for module in PACKAGE.rglob("*.py"):
        used |= set(GET_LOGGER.findall(module.read_text()))
    assert used <= set(LOGGERS), used - set(LOGGERS)
    for name in LOGGERS:
        filters = logging.getLogger(name).filters
        assert sum(isinstance(each, OneLine) for each in filters) == 1, name
