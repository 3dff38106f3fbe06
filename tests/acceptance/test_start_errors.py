"""A worker that cannot start says why in one line, and exits non-zero."""


def lines_of(worker) -> list[str]:
    return [line for line in worker.output.splitlines() if line.strip()]


def test_a_database_that_does_not_answer(start_worker):
    worker = start_worker(database_url="postgres://postgres@127.0.0.1:9/jobsdb")
    assert worker.wait(timeout=60) != 0
    (line,) = lines_of(worker)
    assert line.startswith("CommandError: cannot reach database 'default'")
    assert "127.0.0.1:9/jobsdb" in line


def test_tables_missing_say_run_migrate(start_worker, tmp_path):
    empty = tmp_path / "empty.sqlite3"
    worker = start_worker(database_url=f"sqlite:///{empty}")
    assert worker.wait(timeout=60) != 0
    (line,) = lines_of(worker)
    assert "lacks" in line
    assert "django_jobs migration(s): run `python manage.py migrate` first." in line
