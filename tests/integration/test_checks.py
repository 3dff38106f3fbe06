"""System checks: each id fires on its misconfiguration, and only then."""

import pytest
from django.core import checks
from django.test import override_settings

from django_jobs.backend import JobsBackend


def backend_messages(options=None, queues=None, **params):
    params["OPTIONS"] = options or {}
    if queues is not None:
        params["QUEUES"] = queues
    return JobsBackend("checked", params).check()


def ids(messages):
    return [m.id for m in messages]


def test_a_good_configuration_is_silent():
    assert backend_messages() == []
    assert backend_messages({"DEFAULT_TTR": 10}, queues=["a", "b"]) == []


def test_the_project_checks_pass(db):
    assert [m for m in checks.run_checks() if m.id.startswith("django_jobs")] == []


@override_settings(INSTALLED_APPS=["django.contrib.contenttypes"])
def test_e001_app_not_installed():
    messages = backend_messages()
    assert ids(messages) == ["django_jobs.E001"]
    assert "'django_jobs' is not in INSTALLED_APPS" in messages[0].msg


def test_e002_unknown_database():
    messages = backend_messages({"DATABASE": "jobs"})
    assert ids(messages) == ["django_jobs.E002"]
    assert "'jobs', which is not a key of DATABASES" in messages[0].msg


def test_e003_bad_options():
    messages = backend_messages({"DEFAULT_TTR": -5})
    assert ids(messages) == ["django_jobs.E003"]
    assert "DEFAULT_TTR" in messages[0].msg
    assert ids(backend_messages({"NOT_AN_OPTION": 1})) == ["django_jobs.E003"]


def test_e003_bad_limits():
    (memory,) = backend_messages({"MAX_MEMORY": "512 elephants"})
    assert memory.id == "django_jobs.E003"
    assert "OPTIONS['MAX_MEMORY']: a size is a number of bytes" in memory.msg
    (cpu,) = backend_messages({"MAX_CPU_SECONDS": -1})
    assert "OPTIONS['MAX_CPU_SECONDS']: a CPU time is a number" in cpu.msg


def test_e004_bad_queue_names():
    messages = backend_messages(queues=["ok", "", "x" * 101])
    assert ids(messages) == ["django_jobs.E004"]


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@override_settings(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "other": {"ENGINE": "django.db.backends.dummy"},
    },
    DATABASE_ROUTERS=["django_jobs.routers.JobsRouter"],
    TASKS={
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {"DATABASE": "other"},
        }
    },
)
def test_e008_unsupported_database():
    messages = backend_messages({"DATABASE": "other"})
    assert ids(messages) == ["django_jobs.E008"]
    assert "database 'other' (vendor 'unknown')" in messages[0].msg


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@override_settings(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "direct": {"ENGINE": "django.db.backends.postgresql", "NAME": "jobs"},
        "local": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
)
def test_e011_worker_database():
    # Not connected to: the check reads the engine only.
    assert backend_messages({"WORKER_DATABASE": "direct"}) == []
    messages = backend_messages({"WORKER_DATABASE": "nope"})
    assert ids(messages) == ["django_jobs.E011"]
    assert "'nope', which is not a key of DATABASES" in messages[0].msg
    messages = backend_messages({"WORKER_DATABASE": "local"})
    assert ids(messages) == ["django_jobs.E011"]
    assert "a sqlite database: a pooler is for PostgreSQL" in messages[0].msg


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@override_settings(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "jobs": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    }
)
def test_w001_database_without_router():
    messages = backend_messages({"DATABASE": "jobs"})
    assert ids(messages) == ["django_jobs.W001"]
    assert "DATABASE_ROUTERS" in messages[0].hint


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@override_settings(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "jobs": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    },
    DATABASE_ROUTERS=["django_jobs.routers.JobsRouter"],
    TASKS={
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {"DATABASE": "jobs"},
        }
    },
)
def test_router_sends_jobs_to_the_configured_database():
    from django.db import router

    from django_jobs.models import Job

    assert backend_messages({"DATABASE": "jobs"}) == []
    assert router.db_for_write(Job) == "jobs"
    assert router.allow_migrate("jobs", "django_jobs")
    assert not router.allow_migrate("default", "django_jobs")
    assert router.allow_migrate("default", "auth")


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@override_settings(
    DATABASES={
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "jobs": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
        "bulk": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
    },
    DATABASE_ROUTERS=["django_jobs.routers.JobsRouter"],
    TASKS={
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {"DATABASE": "jobs"},
        },
        "bulk": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {"DATABASE": "bulk"},
        },
    },
)
def test_several_backends_each_in_a_database_of_its_own():
    from django.core import checks
    from django.db import router

    from django_jobs.models import Job

    assert router.db_for_read(Job) == "jobs"  # the admin shows the first
    assert router.allow_migrate("jobs", "django_jobs")
    assert router.allow_migrate("bulk", "django_jobs")
    assert not router.allow_migrate("default", "django_jobs")
    assert [m for m in checks.run_checks() if m.id.startswith("django_jobs")] == []


def test_w002_limits_per_key_on_a_queue_whose_tasks_name_no_key(db):
    keyed = {"QUEUE_LIMITS": {"emails": {"key_concurrency": 2}}}
    messages = JobsBackend("default", {"OPTIONS": keyed}).check()
    assert ids(messages) == ["django_jobs.W002"]
    assert "tests.tasks.configured" in messages[0].msg  # queue "emails", no key
    assert "limit_key" in messages[0].hint
    keyed["QUEUE_LIMITS"] = {"nobody-uses-it": {"key_rate_limit": "5/minute"}}
    assert JobsBackend("default", {"OPTIONS": keyed}).check() == []


def test_e015_a_connection_budget_no_worker_fits_in():
    assert backend_messages({"CONNECTION_BUDGET": 4}) == []  # one child
    messages = backend_messages({"CONNECTION_BUDGET": 2})
    assert ids(messages) == ["django_jobs.E015"]
    assert "'CONNECTION_BUDGET'] is 2, below what one worker holds" in (messages[0].msg)


def test_e016_an_async_queue_outside_the_backends_queues():
    lanes = {"ASYNC_QUEUES": {"crawl": 10}}
    assert backend_messages(lanes, queues=["default", "crawl"]) == []
    assert backend_messages(lanes, queues=[]) == []  # QUEUES empty: any name
    messages = backend_messages(lanes, queues=["default"])
    assert ids(messages) == ["django_jobs.E016"]
    assert "'crawl'" in messages[0].msg
