"""How a worker's log lines come out: plain by default, or JSON.

A project that configures handlers for the ``django_jobs`` loggers (or the
root logger) in ``LOGGING`` decides everything. One that does not (any new
project) still gets a worker that talks: ``runworker`` then logs to stderr
on its own, at the level ``-v`` asks for.

``JSONFormatter`` writes one JSON object per line with the time, level,
logger and message, the job's ``job_id``, ``task`` and ``attempt`` when the
record is about a job, and the exception's traceback when there is one. Use
it in ``LOGGING``, or run ``runworker --json-logs``.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from .compat import TASKS_MODULE

JOB_FIELDS = ("job_id", "task", "attempt")


def log_fields(job: Any) -> dict[str, Any]:
    """The ``extra`` of a log record about ``job``: JOB_FIELDS' values."""
    return {"job_id": job.pk, "task": job.task_path, "attempt": job.attempts}


class JSONFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        for field in JOB_FIELDS:
            if (value := getattr(record, field, None)) is not None:
                line[field] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


#: ``-v`` of ``runworker``: the level of the django_jobs loggers, and of the
#: per-job records (``django_jobs.job``: at 2, each job's start too).
VERBOSITY = {
    0: (logging.WARNING, logging.WARNING),
    1: (logging.INFO, logging.INFO),
    2: (logging.INFO, logging.DEBUG),
    3: (logging.DEBUG, logging.DEBUG),
}
PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"


def configure_worker_logging(verbosity: int = 1, json_lines: bool = False) -> bool:
    """Make sure a worker's lines reach someone; True if this set it up.

    Left alone when the project's LOGGING gave the django_jobs loggers a
    handler (on them or on an ancestor they propagate to): the project
    decides. Otherwise a handler on stderr, plain or JSON, at the level of
    ``verbosity`` (0 to 3).
    """
    ours = logging.getLogger("django_jobs")
    configured = _has_handlers(ours)
    if not configured:
        handler = logging.StreamHandler()  # stderr
        handler.setFormatter(JSONFormatter() if json_lines else _plain())
        ours.addHandler(handler)
        ours.propagate = False
        level, job_level = VERBOSITY[max(0, min(3, verbosity))]
        ours.setLevel(level)
        logging.getLogger("django_jobs.job").setLevel(job_level)
    if json_lines:
        use_json_lines()
    return not configured


def _has_handlers(logger: logging.Logger) -> bool:
    while logger is not None:
        if logger.handlers:
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def _plain() -> logging.Formatter:
    return logging.Formatter(PLAIN_FORMAT)


def use_json_lines() -> None:
    """Every line the worker writes as JSON: each handler of the loggers it
    uses is given the JSON formatter, and records of loggers nobody
    configured (Python's last resort, plain text) go to a JSON handler too."""
    for name in ("", "django_jobs", "django", TASKS_MODULE):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JSONFormatter())
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter())
        handler.setLevel(logging.WARNING)
        root.addHandler(handler)
