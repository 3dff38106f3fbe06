"""A worker says what it does, even in a project that configured no logging."""

import signal

from tests import tasks
from tests.acceptance.conftest import wait_for
from tests.models import Record

QUIET = {"DJANGO_SETTINGS_MODULE": "tests.nologging_settings"}


def test_without_logging_settings_the_worker_talks_on_stderr(start_worker):
    done = tasks.add.enqueue(1, 2)
    failing = tasks.fail.using(max_attempts=1).enqueue("broken pipe dream")
    tasks.sleep.enqueue(0.5, key="slow")
    worker = start_worker("--concurrency", "1", **QUIET)
    wait_for(lambda: Record.objects.filter(key="slow").exists())
    worker.send(signal.SIGINT)
    assert worker.wait(timeout=30) == 0
    lines = worker.output.splitlines()

    def line(text):
        found = [each for each in lines if text in each]
        assert found, f"no line with {text!r} in:\n{worker.output}"
        return found[0]

    start = line("worker ")
    for part in ("started", "django-jobs", "backend 'default'", "concurrency 1"):
        assert part in start
    assert f"job {done.id} tests.tasks.add (attempt 1/3): done in" in line(
        f"job {done.id} "
    )
    assert "failed after" in line(f"job {failing.id} ")
    assert "ValueError: broken pipe dream; buried" in line(f"job {failing.id} ")
    assert "SIGINT: waiting for 1 running job(s)" in line("SIGINT")
    assert "interrupt again to stop them now" in line("SIGINT")
    assert " stopped after " in line("stopped after")


def test_verbosity_zero_says_only_what_is_wrong(start_worker):
    tasks.add.enqueue(1, 2)
    tasks.fail.using(max_attempts=1).enqueue("oops")
    worker = start_worker("--burst", "-v", "0", **QUIET)
    assert worker.wait(timeout=30) == 0
    assert "started" not in worker.output
    assert "done in" not in worker.output
    assert "ValueError: oops; buried" in worker.output


def test_json_logs_make_every_line_json(start_worker):
    import json

    tasks.say.enqueue("hello")
    tasks.fail.using(max_attempts=1).enqueue("oops")
    worker = start_worker("--burst", "--json-logs", **QUIET)
    assert worker.wait(timeout=30) == 0
    records = [json.loads(line) for line in worker.output.splitlines() if line]
    messages = [record["message"] for record in records]
    assert any("started" in message for message in messages)
    said = [r for r in records if r["logger"] == "django_jobs.output"]
    assert said
    assert said[0]["message"].endswith("saying hello")
    assert said[0]["job_id"]
