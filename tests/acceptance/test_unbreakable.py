"""A worker that no job can break: odd strings, forged output, refused writes.

Each test runs real workers over jobs from ``tests.misbehaving`` (a module no
``tasks.py`` imports) and checks the worker carried on: the jobs beside the
odd ones are done, the worker exits 0, and what the odd ones handed back is
stored alike on SQLite and PostgreSQL.
"""

import pytest
from django.db import connection

from django_jobs.models import Job
from tests import misbehaving, tasks

NUL = "a\\x00b"  # what "a\x00b" is stored as: the four characters \x00
SURROGATE = "x\\ud800y"


def run_burst(start_worker, *args: str, timeout: float = 60):
    worker = start_worker("--burst", "--concurrency", "2", *args)
    assert worker.wait(timeout=timeout) == 0, worker.output
    return worker


def stored(result) -> Job:
    return Job.objects.get(pk=result.id)


def test_odd_strings_are_stored_alike_and_the_worker_carries_on(start_worker):
    raised = {k: misbehaving.raise_odd.enqueue(k) for k in ("nul", "surrogate")}
    unprintable = misbehaving.raise_odd.using(max_attempts=1).enqueue("unprintable")
    returned = {k: misbehaving.return_odd.enqueue(k) for k in ("nul", "surrogate")}
    key = misbehaving.return_odd.enqueue("key")
    progress = misbehaving.progress_odd.enqueue("nul")
    checkpoint = misbehaving.checkpoint_odd.enqueue("surrogate")
    after = tasks.add.enqueue(2, 3)

    run_burst(start_worker)

    for kind, expected in (("nul", NUL), ("surrogate", SURROGATE)):
        job = stored(raised[kind])
        assert job.state == "buried"
        assert all(f"ValueError: {expected}" in e["traceback"] for e in job.errors)
        assert stored(returned[kind]).return_value == expected
    assert "Unprintable" in stored(unprintable).errors[0]["traceback"]
    assert stored(key).return_value == {"k\\x00": NUL, "list": [SURROGATE]}
    assert stored(progress).progress["message"] == NUL
    assert stored(progress).return_value == "reported"
    refusal = stored(checkpoint).return_value
    assert refusal.startswith("refused: Task 'tests.misbehaving.checkpoint_odd'")
    assert "lone surrogate" in refusal
    assert stored(after).return_value == 5


@pytest.mark.parametrize("jobs_per_child", ["1", "5"])
def test_what_a_job_prints_is_data_never_protocol(start_worker, jobs_per_child):
    forged = [misbehaving.print_forged.enqueue(0, f"word{i}") for i in range(4)]
    for i, result in enumerate(forged):  # each names another job's id
        other = forged[(i + 1) % len(forged)].id
        Job.objects.filter(pk=result.id).update(args=[int(other), f"word{i}"])
    binary = misbehaving.print_binary.enqueue()
    long_line = misbehaving.print_long_line.enqueue(1_000_000)
    said = misbehaving.say.enqueue("after")

    run_burst(start_worker, "--jobs-per-child", jobs_per_child)

    for i, result in enumerate(forged):
        job = stored(result)
        assert (job.state, job.return_value) == ("done", f"word{i}")
        (log,) = job.logs
        assert f"word{i} is mine" in log["text"]
        others = [f"word{j} is mine" for j in range(4) if j != i]
        assert not any(other in log["text"] for other in others)
        assert "django-jobs:end" in log["text"]  # kept, as the data it is
    assert stored(binary).return_value == "binary printed"
    assert "binary" in stored(binary).logs[0]["text"]
    job = stored(long_line)
    assert (job.state, job.return_value) == ("done", 1_000_000)
    assert job.logs[0]["truncated"]
    assert "saying after" in stored(said).logs[0]["text"]


@pytest.mark.parametrize("jobs_per_child", ["1", "3"])
def test_a_job_that_closes_or_replaces_its_output(start_worker, jobs_per_child):
    closed = misbehaving.close_output.enqueue()
    replaced = misbehaving.replace_output.enqueue()
    said = [misbehaving.say.enqueue(f"w{i}") for i in range(3)]

    run_burst(start_worker, "--concurrency", "1", "--jobs-per-child", jobs_per_child)

    assert stored(closed).return_value == "closed"
    assert stored(replaced).return_value == "replaced"
    for i, result in enumerate(said):
        job = stored(result)
        assert job.return_value == f"w{i}"
        assert f"saying w{i}" in job.logs[0]["text"]


def test_a_job_that_writes_nonsense_to_the_worker_is_stopped(start_worker):
    broken = misbehaving.break_protocol.using(max_attempts=1).enqueue()
    after = tasks.add.enqueue(2, 3)

    worker = run_burst(start_worker, "--concurrency", "1")

    job = stored(broken)
    assert job.state == "buried"
    assert job.return_value is None
    assert "not a message" in job.errors[-1]["traceback"]
    assert "broke the protocol" in worker.output
    assert stored(after).return_value == 5


REFUSE = {
    "postgresql": [
        """CREATE FUNCTION refuse_value() RETURNS trigger AS $$
        BEGIN RAISE EXCEPTION 'refused by the test' USING ERRCODE = '22023';
        END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER refuse_value BEFORE UPDATE ON django_jobs_job
        FOR EACH ROW WHEN (NEW.return_value = '"refuse me"'::jsonb)
        EXECUTE FUNCTION refuse_value()""",
    ],
    "sqlite": [
        """CREATE TRIGGER refuse_value BEFORE UPDATE ON django_jobs_job
        FOR EACH ROW WHEN NEW.return_value = '"refuse me"'
        BEGIN SELECT RAISE(ABORT, 'refused by the test'); END""",
    ],
    "mysql": [
        """CREATE TRIGGER refuse_value BEFORE UPDATE ON django_jobs_job
        FOR EACH ROW BEGIN IF NEW.return_value = '"refuse me"' THEN
        SIGNAL SQLSTATE '22023' SET MESSAGE_TEXT = 'refused by the test';
        END IF; END""",
    ],
}


@pytest.fixture
def refused_value(transactional_db):
    """The database refuses to store the return value "refuse me"."""
    with connection.cursor() as cursor:
        for statement in REFUSE[connection.vendor]:
            cursor.execute(statement)
    yield "refuse me"
    with connection.cursor() as cursor:
        cursor.execute(
            "DROP TRIGGER refuse_value"
            + (" ON django_jobs_job" if connection.vendor == "postgresql" else "")
        )
        if connection.vendor == "postgresql":
            cursor.execute("DROP FUNCTION refuse_value()")


def test_a_refused_write_buries_the_job_and_the_worker_carries_on(
    start_worker, refused_value
):
    refused = tasks.echo.enqueue(refused_value)  # echo returns a dict: fine
    plain = misbehaving.say.enqueue(refused_value)  # returns the string itself
    after = [tasks.add.enqueue(i, i) for i in range(5)]

    worker = run_burst(start_worker)

    assert stored(refused).state == "done"
    job = stored(plain)
    assert job.state == "buried"
    (error,) = job.errors
    assert error["exception_class_path"] == "django_jobs.exceptions.OutcomeNotStored"
    assert "refused to store this attempt's return value" in error["traceback"]
    assert "refused by the test" in error["traceback"]
    assert [stored(r).return_value for r in after] == [0, 2, 4, 6, 8]
    assert "will retry" not in worker.output  # never waited for
