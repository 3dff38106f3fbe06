"""``jobs health``: exit 0 when the database answers (and a worker here beats),
else 1 with one line that says why."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_jobs.health import this_host
from django_jobs.models import Worker


def health(*args, backend: str = "default") -> tuple[int, str, str]:
    out, err = StringIO(), StringIO()
    args = ("--backend", backend, "health", *args)
    try:
        call_command("jobs", *args, stdout=out, stderr=err)
    except SystemExit as exit_:
        return exit_.code, out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


def beating(seconds_ago: float = 0, host: str = "", backend="default") -> Worker:
    return Worker.objects.create(
        id=f"{host or this_host()}:1:{seconds_ago}",
        backend=backend,
        hostname=host or this_host(),
        pid=1,
        concurrency=1,
        last_heartbeat=timezone.now() - timedelta(seconds=seconds_ago),
    )


def test_the_database_answers(db):
    assert health() == (0, "ok: database 'default' answers\n", "")


def test_a_worker_on_this_host_with_a_fresh_heartbeat(db):
    worker = beating(seconds_ago=1)
    code, out, _ = health("--worker")
    assert code == 0
    assert out == f"ok: database 'default' answers; worker {worker.pk} beat 1 s ago\n"


def test_no_worker_on_this_host(db):
    beating(host="elsewhere")
    beating(backend="strict")
    code, out, err = health("--worker")
    assert (code, out) == (1, "")
    assert err == (
        f"unhealthy: no worker of backend 'default' runs on host {this_host()!r}\n"
    )
    assert health("--worker", "--host", "elsewhere")[0] == 0
    assert health("--worker", backend="strict")[0] == 0


def test_a_heartbeat_older_than_worker_timeout(db):
    worker = beating(seconds_ago=120)  # the tests' WORKER_TIMEOUT is 3 s
    code, _, err = health("--worker")
    assert code == 1
    assert err == (
        f"unhealthy: worker {worker.pk} on host {this_host()!r} last sent a "
        "heartbeat 2 min ago (more than 3 s)\n"
    )
    assert health("--worker", "--max-age", "300")[0] == 0


def test_the_freshest_worker_on_the_host_counts(db):
    beating(seconds_ago=120)
    beating(seconds_ago=1)
    assert health("--worker")[0] == 0


def test_bad_max_age(db):
    with pytest.raises(CommandError, match="--max-age must be a number of seconds"):
        call_command("jobs", "health", "--max-age", "0")
