"""What runs inside a job's process.

The child receives jobs from the supervisor over its socket, runs each one
and reports the outcome: a return value, an error with its traceback, or
"unrunnable" when the job does not name a ``django.tasks.Task``. It never
writes job state; it may use the ORM for the task's own work, with its own
connections, which it closes before it exits.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
import traceback
from collections import deque
from datetime import datetime
from typing import Any

from django.db import close_old_connections, connections
from django.tasks import Task, TaskResultStatus
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from ..arguments import to_json
from ..context import JobContext, current_job
from ..exceptions import TaskNotFound, class_path
from ..task import JobResult
from . import protocol

_channel: _Channel | None = None


class _Channel:
    """The child's connection to its supervisor, and the jobs it was given."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = protocol.Reader(sock)
        self.pending: deque[dict[str, Any]] = deque()
        self.last = False  # no more jobs will come after the pending ones
        self.stop = False  # the supervisor asked it to stop after this job
        self.job_id: int | None = None
        self.captured = False
        self.single: bool | None = None

    def accept(self, message: protocol.Message) -> protocol.Message | None:
        """Take in jobs and stop requests; return any other message."""
        if message.get("op") == "run":
            if self.single is None:  # its only job: no need to mark its output
                self.single = len(message["jobs"]) == 1 and bool(message.get("last"))
            self.pending.extend(message["jobs"])
            self.last = self.last or bool(message.get("last"))
        elif message.get("op") == "stop":
            self.stop = True
        else:
            return message
        return None

    def next_job(self) -> dict[str, Any] | None:
        """The next job to run, waiting for one if need be; None: time to exit."""
        for message in self.reader.read():  # what arrived meanwhile
            self.accept(message)
        while not self.pending and not self.stop and not self.last:
            message = self.reader.read_blocking()
            if message is None:
                return None
            self.accept(message)
        if self.stop or self.reader.closed or not self.pending:
            return None
        return self.pending.popleft()

    def request(self, message: protocol.Message) -> protocol.Message:
        """Send ``message`` and wait for the reply, taking in jobs meanwhile."""
        protocol.send(self.sock, message)
        while True:
            reply = self.reader.read_blocking()
            if reply is None:
                raise RuntimeError("the worker supervisor went away")
            if self.accept(reply) is not None:
                return reply


def main(sock: socket.socket, captured: bool = False) -> None:
    """Run jobs until told to stop, out of jobs, or the supervisor is gone.

    ``captured``: stdout and stderr go to the supervisor, which is told where
    each job's output starts and ends.
    """
    global _channel
    _channel = channel = _Channel(sock)
    channel.captured = captured
    warm_up()
    try:
        while (job := channel.next_job()) is not None:
            channel.job_id = job["id"]
            outcome = run(job)
            channel.job_id = None
            protocol.send(sock, outcome)
    finally:
        connections.close_all()
        sys.stdout.flush()
        sys.stderr.flush()


def warm_up() -> None:
    """Walk the path a job takes before the first job arrives.

    A new child shares its memory with the zygote until it writes to it, and
    merely using an object writes (its reference count): the first job would
    pay for copying every page it touches. The child is idle now; pay here.
    """
    sample = {"id": 0, "task_path": __name__ + ".run", "args": [], "kwargs": {}}
    protocol.Reader(_channel.sock)._messages(protocol.encode(sample))
    resolve(sample["task_path"])
    describe(ValueError("warm-up"))
    to_json({"a": [1, 2.5, None]}, "warm-up", "value")


def run(job: dict[str, Any]) -> protocol.Message:
    """Run one job; return the outcome message for the supervisor."""
    job_id = job["id"]
    task = resolve(job["task_path"])
    if not isinstance(task, Task):
        return {"op": "outcome", "id": job_id, "unrunnable": True, "error": task}
    protocol.send(_channel.sock, {"op": "started", "id": job_id})
    started = time.perf_counter()
    running = current_job.set(job_id)  # the jobs it enqueues are its children
    try:
        args = job["args"]
        if task.takes_context:
            args = [job_context(task, job), *args]
        value = task.call(*args, **job["kwargs"])
        value = to_json(value, job["task_path"], "the return value")
        outcome = {"op": "outcome", "id": job_id, "ok": True, "value": value}
    except BaseException as exc:  # SystemExit too: every ending is an outcome
        outcome = {"op": "outcome", "id": job_id, "ok": False, "error": describe(exc)}
    finally:
        current_job.reset(running)
        close_old_connections()
        end_output(job_id)
    outcome["seconds"] = time.perf_counter() - started
    return outcome


def end_output(job_id: int) -> None:
    """Flush, then mark in the output where a job's lines end.

    Done before the outcome is sent, so the supervisor, reading the pipe
    when the outcome arrives, has every line of the job. A child that runs a
    single job needs no mark: all its output is that job's.
    """
    if not _channel.captured:
        return
    sys.stdout.flush()
    sys.stderr.flush()
    if not _channel.single:
        with contextlib.suppress(OSError):
            os.write(1, b"\x00django-jobs:end %d\n" % job_id)


def resolve(path: str) -> Task | dict[str, str]:
    """The Task at ``path``, or an error saying why there is none."""
    try:
        task = import_string(path)
    except Exception as exc:
        error = describe(exc)
        error["exception_class_path"] = class_path(TaskNotFound)
        error["traceback"] = f"{path!r} could not be imported:\n{error['traceback']}"
        return error
    if not isinstance(task, Task):
        return {
            "exception_class_path": class_path(TaskNotFound),
            "traceback": (
                f"{TaskNotFound.__name__}: {path!r} is "
                f"{type(task).__qualname__}, not a django.tasks.Task; "
                "it was not called.\n"
            ),
        }
    return task


def job_context(task: Task, job: dict[str, Any]) -> JobContext:
    """The context a ``takes_context=True`` task gets (see django_jobs.context)."""
    return JobContext(
        task_result=running_result(task, job),
        job_id=job["id"],
        queue=job["queue"],
        deadline=parse_datetime(job["reserved_until"]),
        last_checkpoint=job["checkpoint"],
    )


def running_result(task: Task, job: dict[str, Any]) -> JobResult:
    """The TaskResult a task with ``takes_context`` sees while it runs."""
    return JobResult(
        task=task,
        id=str(job["id"]),
        status=TaskResultStatus.RUNNING,
        enqueued_at=_datetime(job["enqueued_at"]),
        started_at=_datetime(job["started_at"]),
        finished_at=None,
        last_attempted_at=_datetime(job["last_attempted_at"]),
        args=job["args"],
        kwargs=job["kwargs"],
        backend=job["backend"],
        errors=[],
        worker_ids=job["worker_ids"],
    )


def request(message: protocol.Message) -> protocol.Message:
    """Ask the supervisor something about the running job; wait for the reply."""
    return _running_channel().request(message)


def notify(message: protocol.Message) -> None:
    """Tell the supervisor something about the running job; do not wait."""
    protocol.send(_running_channel().sock, message)


def _running_channel() -> _Channel:
    if _channel is None or _channel.job_id is None:
        raise RuntimeError("This can only be called from a job run by runworker.")
    return _channel


def describe(exc: BaseException) -> dict[str, str]:
    return {
        "exception_class_path": class_path(type(exc)),
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None
