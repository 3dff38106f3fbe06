"""How a worker's log lines come out: plain by default, or JSON.

A project that configures handlers for the ``django_jobs`` loggers (or the
root logger) in ``LOGGING`` decides everything. One that does not (any new
project) still gets a worker that talks: ``runworker`` then logs to stderr
on its own, at the level ``-v`` asks for.

``JSONFormatter`` writes one JSON object per line with the time, level,
logger and message, the job's ``job_id``, ``task`` and ``attempt`` when the
record is about a job, and the exception's traceback when there is one. Use
it in ``LOGGING``, or run ``runworker --json-logs``.

Every message of the ``django_jobs`` loggers is one line (``OneLine``,
installed when the app loads, whatever the project's LOGGING): a database
error's text, which libpq spreads over several lines (DETAIL, HINT, one line
per address tried), would otherwise break a log line in the middle, and log
shippers read a line as a record. A traceback stays as it is.

Django's Tasks framework logs each job's start and end on its own logger
(``django.tasks``), which the worker's own lines already say; the worker
quiets it, unless the project's LOGGING configures it (see
``quiet_tasks_logger``).
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from . import trace_ids
from .compat import TASKS_MODULE

JOB_FIELDS = ("job_id", "task", "attempt")
#: Every logger django-jobs writes to (a filter on a logger sees only the
#: records logged to that very logger, not those of its children).
LOGGERS = (
    "django_jobs",
    "django_jobs.admin",
    "django_jobs.hooks",
    "django_jobs.job",
    "django_jobs.output",
    "django_jobs.queue",
    "django_jobs.schedules",
    "django_jobs.worker",
)


class OneLine(logging.Filter):
    """Puts a record's message on one line: its lines, stripped, joined by
    spaces. The record's traceback (``exc_info``), which the handler's
    formatter adds, is left as it is."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # bad arguments: logging reports it as usual
            return True
        if "\n" in message or "\r" in message:
            lines = (line.strip() for line in message.splitlines())
            record.msg = " ".join(line for line in lines if line)
            record.args = ()
        return True


def keep_messages_on_one_line() -> None:
    """Give every django-jobs logger the ``OneLine`` filter (once)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(each, OneLine) for each in logger.filters):
            logger.addFilter(OneLine())


def log_fields(job: Any) -> dict[str, Any]:
    """The ``extra`` of a log record about ``job``: JOB_FIELDS' values, and
    its trace's ids when it has a trace (trace_ids.of_job)."""
    fields = {"job_id": job.pk, "task": job.task_path, "attempt": job.attempts}
    return {**fields, **trace_ids.of_job(job)}


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
        if getattr(record, "trace_id", None):
            line["trace_id"], line["span_id"] = record.trace_id, record.span_id
        else:  # a line logged inside a span: the web request's, the job's
            line.update(trace_ids.current())
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
        # A project that configured only some of them ("django_jobs.worker")
        # has those lines already: this handler writes the others.
        handler.addFilter(_not_handled_below)
        ours.addHandler(handler)
        ours.propagate = False
        level, job_level = VERBOSITY[max(0, min(3, verbosity))]
        ours.setLevel(level)
        logging.getLogger("django_jobs.job").setLevel(job_level)
    quiet_tasks_logger()
    if json_lines:
        use_json_lines()
    return not configured


#: The loggers a worker's logging set-up may change.
TOUCHED_LOGGERS = ("", "django_jobs", "django_jobs.job", "django", TASKS_MODULE)


@contextlib.contextmanager
def worker_logging(verbosity: int = 1, json_lines: bool = False) -> Iterator[bool]:
    """``configure_worker_logging`` for as long as the worker runs.

    A worker run inside another process (``call_command``, as test suites and
    scripts do) leaves that process's logging as it found it: the handlers,
    formatters, levels and propagation of the loggers it touched.
    """
    saved = [_Saved.of(name) for name in TOUCHED_LOGGERS]
    try:
        yield configure_worker_logging(verbosity, json_lines)
    finally:
        for state in saved:
            state.restore()


@dataclass
class _Saved:
    logger: logging.Logger
    level: int
    propagate: bool
    handlers: list[logging.Handler]
    formatters: dict[logging.Handler, logging.Formatter | None]

    @classmethod
    def of(cls, name: str) -> _Saved:
        logger = logging.getLogger(name)
        handlers = list(logger.handlers)
        formatters = {handler: handler.formatter for handler in handlers}
        return cls(logger, logger.level, logger.propagate, handlers, formatters)

    def restore(self) -> None:
        for handler in self.logger.handlers:
            if handler not in self.handlers:
                self.logger.removeHandler(handler)
        for handler, formatter in self.formatters.items():
            handler.setFormatter(formatter)
        self.logger.setLevel(self.level)
        self.logger.propagate = self.propagate


def quiet_tasks_logger() -> None:
    """Turn down Django's ``django.tasks`` logger in the worker, unless the
    project's LOGGING gave it a level or a handler.

    Its lines ("Task id=12 path=... state=RUNNING", then SUCCESSFUL or, at
    ERROR, FAILED) repeat the worker's own for every job: in development
    (Django's default logging shows INFO when DEBUG is on) each job was said
    twice, and without LOGGING in production, the default mail_admins
    handler would mail every failed job.
    """
    tasks_logger = logging.getLogger(TASKS_MODULE)
    if tasks_logger.level == logging.NOTSET and not tasks_logger.handlers:
        tasks_logger.setLevel(logging.CRITICAL)


def _not_handled_below(record: logging.LogRecord) -> bool:
    """False for a record that a project's handler below ``django_jobs`` took
    already (on its own logger or one between): it would be written twice."""
    name = record.name
    while name.startswith("django_jobs."):
        logger = logging.Logger.manager.loggerDict.get(name)
        if isinstance(logger, logging.Logger):
            if logger.handlers:
                return False
            if not logger.propagate:
                return True
        name = name.rpartition(".")[0]
    return True


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
