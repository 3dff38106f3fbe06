"""What runs inside a job's process.

The child receives jobs from the supervisor over its socket, runs each one
and reports the outcome: a return value, an error with its traceback, or
"unrunnable" when the job does not name a ``django.tasks.Task``. It never
writes job state; it may use the ORM for the task's own work, with its own
connections, which it closes before it exits.
"""

from __future__ import annotations

import contextlib
import importlib
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
from ..exceptions import TaskNotFound, TaskNotImportable, class_path
from ..task import JobResult
from . import protocol

_channel: _Channel | None = None


class _Channel:
    """The child's connection to its supervisor, and the jobs it was given."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = protocol.Reader(sock, fds=True)
        self.pending: deque[dict[str, Any]] = deque()
        self.last = False  # no more jobs will come after the pending ones
        self.stop = False  # the supervisor asked it to stop after this job
        self.job_id: int | None = None
        #: A copy of the child's own output pipe (stdout and stderr), to go
        #: back to between jobs that each print into a pipe of their own.
        self.own_output: int | None = None

    def accept(self, message: protocol.Message) -> protocol.Message | None:
        """Take in jobs and stop requests; return any other message."""
        if message.get("op") == "run":
            for job in message["jobs"][: message.get("pipes", 0)]:
                if self.reader.fds:  # sent with the message, in job order
                    job["output"] = self.reader.fds.popleft()
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

    ``captured``: stdout and stderr go to the supervisor (see output.py).
    """
    global _channel
    _channel = channel = _Channel(sock)
    if captured:
        channel.own_output = os.dup(1)
    warm_up()
    try:
        while (job := channel.next_job()) is not None:
            channel.job_id = job["id"]
            outcome = run(job)
            channel.job_id = None
            protocol.send(sock, outcome)
    finally:
        connections.close_all()
        flush_output()


def warm_up() -> None:
    """Walk the path a job takes before the first job arrives.

    A new child shares its memory with the zygote until it writes to it, and
    merely using an object writes (its reference count): the first job would
    pay for copying every page it touches. The child is idle now; pay here.
    """
    sample = {"id": 0, "task_path": __name__ + ".run", "args": [], "kwargs": {}}
    protocol.decode(protocol.encode({"op": "run", "jobs": [sample]}))
    resolve(sample["task_path"])
    describe(ValueError("warm-up"))
    to_json({"a": [1, 2.5, None]}, "warm-up", "value")


def run(job: dict[str, Any]) -> protocol.Message:
    """Run one job; return the outcome message for the supervisor."""
    print_into(job.get("output"), close=True)
    try:
        return _run(job)
    finally:
        if "output" in job:  # what it prints between jobs is its own again
            print_into(_channel.own_output)
        restore_streams()


#: Python's stdout and stderr as the child started with them.
_STREAMS = {"stdout": sys.stdout, "stderr": sys.stderr}


def restore_streams() -> None:
    """Give the next job the stdout and stderr a job may have replaced or
    closed (``sys.stdout = ...``), writing to file descriptors 1 and 2."""
    for name, fd in (("stdout", 1), ("stderr", 2)):
        stream = _STREAMS[name]
        if stream.closed:
            stream = _STREAMS[name] = open(  # noqa: SIM115  (lives as long as the child)
                fd, "w", buffering=1, closefd=False, errors="backslashreplace"
            )
        setattr(sys, name, stream)


def _run(job: dict[str, Any]) -> protocol.Message:
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
        value = to_json(value, job["task_path"], "the return value", escape=True)
        outcome = {"op": "outcome", "id": job_id, "ok": True, "value": value}
    except BaseException as exc:  # SystemExit too: every ending is an outcome
        outcome = {"op": "outcome", "id": job_id, "ok": False, "error": describe(exc)}
    finally:
        current_job.reset(running)
        close_old_connections()
        # Before the outcome is sent: the supervisor, reading the job's pipe
        # when the outcome arrives, then has every line of it.
        flush_output()
    outcome["seconds"] = time.perf_counter() - started
    return outcome


def flush_output() -> None:
    """Flush Python's stdout and stderr, whatever the job did to them."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()


def print_into(fd: int | None, *, close: bool = False) -> None:
    """Point stdout and stderr (file descriptors 1 and 2) at ``fd``."""
    if fd is None:
        return
    flush_output()
    with contextlib.suppress(OSError):  # the job may have closed anything
        os.dup2(fd, 1)
        os.dup2(fd, 2)
    if close:
        with contextlib.suppress(OSError):
            os.close(fd)


def resolve(path: str) -> Task | dict[str, Any]:
    """The Task at ``path``, or an error saying why there is none.

    An error with ``importable: False`` may go away (a deploy in progress);
    one without names something that is no Task, and never will be.
    """
    try:
        task = _import(path)
    except Exception as exc:
        cause = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return {
            "exception_class_path": class_path(TaskNotImportable),
            "traceback": (
                f"{TaskNotImportable.__name__}: {path!r} cannot be imported in this "
                f"worker ({cause}). A deploy may be in progress, or this worker "
                "runs older code than the code that enqueued the job.\n\n"
                + describe(exc)["traceback"]
            ),
            "importable": False,
        }
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


def _import(path: str) -> Any:
    try:
        return import_string(path)
    except ImportError:
        # A module written since this process looked at its folder (a deploy)
        # is found once the import system forgets what it saw.
        importlib.invalidate_caches()
        return import_string(path)


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
    """An error as django.tasks keeps it; never fails, whatever ``exc`` is."""
    try:
        text = "".join(traceback.format_exception(exc))
    except Exception as failure:  # an exception too odd to format
        text = f"{type(exc).__qualname__} (its traceback could not be formatted: "
        text += f"{type(failure).__name__})\n"
    return {"exception_class_path": class_path(type(exc)), "traceback": text}


def _datetime(value: str | None) -> datetime | None:
    return parse_datetime(value) if value else None
