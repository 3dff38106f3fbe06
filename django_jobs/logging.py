"""JSON log lines, for log shippers.

Use it in ``LOGGING`` for the worker's loggers, or run ``runworker
--json-logs``, which puts it on every handler the worker logs through. Each
line is one JSON object with the time, level, logger and message, the job's
``job_id``, ``task`` and ``attempt`` when the record is about a job, and the
exception's traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

JOB_FIELDS = ("job_id", "task", "attempt")


def job_fields(job: Any) -> dict[str, Any]:
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


def use_json_lines() -> None:
    """Format every handler of the root and django_jobs loggers as JSON."""
    for name in ("", "django_jobs", "django", "django.tasks"):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(JSONFormatter())
