"""Check E018: a MariaDB or MySQL server without SKIP LOCKED is refused at
``check`` time, in one line naming the version found and the one needed.

The version comes from the server, so most tests hand the check a stand-in
connection and run on every database; one test runs against the real server
when the suite runs on MariaDB, and one against a port where no server
listens (said nothing: ``check`` must not fail a build without its server).
"""

from types import SimpleNamespace
from unittest import mock

import pytest
from django.db import OperationalError, connection, connections
from django.db.utils import ConnectionHandler

from django_jobs import checks as jobs_checks
from django_jobs.backend import JobsBackend


def ids(messages):
    return [m.id for m in messages]


def check_on(server) -> list:
    """The checks of a backend whose database is the stand-in ``server``."""
    with (
        mock.patch.object(jobs_checks, "database_vendor", return_value="mysql"),
        mock.patch.object(jobs_checks, "connections", {"default": server}),
    ):
        return JobsBackend("checked", {"OPTIONS": {}}).check()


def server(version: tuple[int, ...], mariadb: bool) -> SimpleNamespace:
    return SimpleNamespace(
        vendor="mysql", mysql_version=version, mysql_is_mariadb=mariadb
    )


def test_an_older_mariadb_is_refused():
    (message,) = check_on(server((10, 5, 0), mariadb=True))
    assert message.id == "django_jobs.E018"
    assert message.msg == (
        "TASKS['checked']: MariaDB 10.5.0 is too old for django_jobs: it needs "
        "MariaDB 10.6 or newer (SKIP LOCKED)."
    )
    assert "\n" not in message.msg


def test_an_older_mysql_is_refused():
    (message,) = check_on(server((5, 7, 44), mariadb=False))
    assert message.id == "django_jobs.E018"
    assert "MySQL 5.7.44 is too old" in message.msg
    assert "it needs MySQL 8.0.1 or newer" in message.msg
    assert ids(check_on(server((8, 0, 0), mariadb=False))) == ["django_jobs.E018"]


@pytest.mark.parametrize(
    ("version", "mariadb"),
    [
        ((10, 6, 0), True),
        ((10, 11, 9), True),
        ((11, 4, 2), True),
        ((8, 0, 1), False),
        ((8, 4, 0), False),
        ((9, 1, 0), False),
    ],
)
def test_a_recent_enough_server_passes(version, mariadb):
    assert check_on(server(version, mariadb)) == []


def test_an_unreachable_server_says_nothing():
    class Unreachable:
        vendor = "mysql"

        @property
        def mysql_version(self):
            raise OperationalError(2003, "Can't connect to server")

        mysql_is_mariadb = mysql_version

    assert check_on(Unreachable()) == []


def test_no_server_listening_says_nothing(db):
    pytest.importorskip("MySQLdb")
    handler = ConnectionHandler(
        {
            "default": {
                "ENGINE": "django.db.backends.mysql",
                "HOST": "127.0.0.1",
                "PORT": "1",
                "NAME": "nowhere",
                "USER": "root",
                "OPTIONS": {"connect_timeout": 2},
            }
        }
    )
    gone = handler["default"]
    try:
        with (
            mock.patch.object(jobs_checks, "database_vendor", return_value="mysql"),
            mock.patch.object(jobs_checks, "connections", handler),
        ):
            assert JobsBackend("checked", {"OPTIONS": {}}).check() == []
    finally:
        gone.close()


@pytest.mark.skipif(
    connection.vendor != "mysql", reason="the real server's version: MariaDB/MySQL"
)
def test_the_real_server_passes_and_an_older_version_of_it_is_refused(db):
    assert JobsBackend("checked", {"OPTIONS": {}}).check() == []
    # The server's version is a cached property of the wrapper (not of the
    # ``connection`` proxy): put an older one in its place, then the real one.
    cached = connections["default"].__dict__
    names = ("mysql_version", "mysql_is_mariadb")
    saved = {name: cached[name] for name in names if name in cached}
    cached.update(mysql_version=(10, 5, 0), mysql_is_mariadb=True)
    try:
        (message,) = JobsBackend("checked", {"OPTIONS": {}}).check()
    finally:
        for name in names:
            cached.pop(name, None)
        cached.update(saved)
    assert message.id == "django_jobs.E018"
    assert "MariaDB 10.5.0 is too old for django_jobs" in message.msg
