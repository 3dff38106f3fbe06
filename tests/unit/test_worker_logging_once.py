"""A project that configures only some django_jobs loggers gets each line once."""

import io
import logging

from django_jobs.logging import TOUCHED_LOGGERS, worker_logging


def no_project_logging(monkeypatch):
    """In the test's body: pytest's own log capture is on the root by then."""
    for name in (*TOUCHED_LOGGERS, "django_jobs.worker", "django_jobs.queue"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "level", logging.NOTSET)
        monkeypatch.setattr(logger, "propagate", True)


def test_a_line_the_project_handles_below_django_jobs_is_not_written_again(
    monkeypatch, capsys
):
    no_project_logging(monkeypatch)
    project = io.StringIO()
    worker = logging.getLogger("django_jobs.worker")
    monkeypatch.setattr(worker, "handlers", [logging.StreamHandler(project)])
    monkeypatch.setattr(worker, "level", logging.INFO)
    with worker_logging(verbosity=1):
        worker.info("growing to 3 children")
        logging.getLogger("django_jobs.worker.scaling").info("from below it")
        logging.getLogger("django_jobs.queue").warning("nobody else writes this")
    assert project.getvalue().splitlines() == [
        "growing to 3 children",
        "from below it",
    ]
    written = capsys.readouterr().err
    assert "growing to 3 children" not in written
    assert "from below it" not in written
    assert "nobody else writes this" in written
