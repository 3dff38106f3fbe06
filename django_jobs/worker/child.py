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
from django.utils.dateparse import parse_datetime

from ..compat import Task, TaskResultStatus
from ..context import JobContext
from ..exceptions import (
    ClaimLost,
    NotRecorded,
    ReturnValueNotStored,
    TaskNotFound,
    TaskNotImportable,
    class_path,
)
from ..returns import stored_return_value
from ..scope import current_job
from ..task import JobResult, job_result, task_at
from . import child_connections, protocol
from .failures import Kind

_channel: _Channel | None = None


class _Channel:
    """The child's connection to its supervisor, and the jobs it was given."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = protocol.Reader(sock, fds=True)
        self.pending: deque[dict[str, Any]] = deque()
        self.last = False  # no more jobs will come after the pending ones
        self.stop = False  # the supervisor asked it to stop after this job
        #: A copy of the child's own output pipe (stdout and stderr), to go
        #: back to between jobs that each print into a pipe of their own.
        self.own_output: int | None = None
        #: Databases to connect to while idle (see child_connections.py).
        self.warm: list[str] = []

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
        elif message.get("op") == "warm":
            self.warm = [str(alias) for alias in message.get("databases", [])]
        else:
            return message
        return None

    def next_job(self) -> dict[str, Any] | None:
        """The next job to run, waiting for one if need be; None: time to exit."""
        for message in self.reader.read():  # what arrived meanwhile
            self.accept(message)
        while not self.pending and not self.stop and not self.last:
            if self.warm:  # idle: the time to open what the job will need
                child_connections.open_ahead(self.warm)
                self.warm = []
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

    # The holder of the running job's claim, for its context (context.Holder)

    def touch(self, job_id: int, seconds: float | None) -> datetime:
        reply = self.request({"op": "touch", "id": job_id, "seconds": seconds})
        return _deadline(reply, job_id, "touch")

    def checkpoint(self, job_id: int, data: Any) -> datetime:
        reply = self.request({"op": "checkpoint", "id": job_id, "data": data})
        return _deadline(reply, job_id, "checkpoint")

    def progress(self, job_id: int, report: dict[str, Any]) -> None:
        protocol.send(self.sock, {"op": "progress", "id": job_id, **report})


def _deadline(reply: protocol.Message, job_id: int, operation: str) -> datetime:
    """The new deadline a reply gives, or the reason there is none."""
    if reply.get("ok"):
        return parse_datetime(reply["deadline"])
    if reply.get("lost"):
        raise ClaimLost(job_id, operation)
    raise NotRecorded(
        f"job {job_id}'s {operation} was not recorded: {reply.get('error')}"
    )


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
            outcome = run(job)
            protocol.send(sock, outcome)
    finally:
        connections.close_all()
        flush_output()


def warm_up() -> None:
    """Walk the path a job takes before the first job arrives.

    A new child shares its memory with the zygote until it writes to it, and
    merely using an object writes (its reference count): the first job would
    pay for copying every page it touches. The child is idle now; pay here,
    but only for the path every job takes: a failure's path (formatting a
    traceback reads source files) is left to the jobs that fail.
    """
    sample = {"id": 0, "task_path": __name__ + ".run", "args": [], "kwargs": {}}
    protocol.decode(protocol.encode({"op": "run", "jobs": [sample]}))
    resolve(sample["task_path"])
    stored_return_value({"a": [1, 2.5, None]}, "warm-up")


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
        return failed(job_id, *task)
    child_connections.check_opened_ahead()
    protocol.send(_channel.sock, {"op": "started", "id": job_id})
    started = time.perf_counter()
    running = current_job.set(job_id)  # the jobs it enqueues are its children
    try:
        args = job["args"]
        if task.takes_context:
            args = [job_context(task, job), *args]
        value = task.call(*args, **job["kwargs"])
    except BaseException as exc:  # SystemExit too: every ending is an outcome
        outcome = failed(job_id, Kind.RAISED, describe(exc))
    else:
        outcome = returned(job_id, value, job["task_path"])
    finally:
        current_job.reset(running)
        used = child_connections.in_use()
        close_old_connections()
        # Before the outcome is sent: the supervisor, reading the job's pipe
        # when the outcome arrives, then has every line of it.
        flush_output()
    outcome["seconds"] = time.perf_counter() - started
    outcome["databases"] = used
    return outcome


def returned(job_id: int, value: Any, task_path: str) -> protocol.Message:
    """The outcome of a job that returned ``value``: done, or, if the value
    cannot be stored, a failure that buries the job (its work was done)."""
    try:
        value = stored_return_value(value, task_path)
    except ReturnValueNotStored as exc:
        return failed(job_id, Kind.UNSTORABLE, error_of(exc))
    return {"op": "outcome", "id": job_id, "ok": True, "value": value}


def failed(job_id: int, kind: Kind, error: dict[str, str]) -> protocol.Message:
    """The outcome of a job that failed: how (``Kind.from_child``) and why."""
    return {
        "op": "outcome",
        "id": job_id,
        "ok": False,
        "kind": kind.name,
        "error": error,
    }


def error_of(exc: Exception) -> dict[str, str]:
    """An error of ours, in its own words: the traceback would show only
    django_jobs' frames, which say nothing about the job."""
    cls = type(exc)
    return {
        "exception_class_path": class_path(cls),
        "traceback": f"{cls.__name__}: {exc}\n",
    }


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


def resolve(path: str) -> Task | tuple[Kind, dict[str, str]]:
    """The Task at ``path``, or how and why there is none.

    ``Kind.NOT_IMPORTABLE`` may go away (a deploy in progress);
    ``Kind.NOT_A_TASK`` names something that is no Task, or a path that no
    worker can ever import (``TaskNeverImportable``), and never will be.
    """
    try:
        return task_at(path)
    except TaskNotImportable as exc:
        why = exc.__cause__ or exc
        cause = f"{type(why).__name__}: {why}".splitlines()[0]
        return Kind.NOT_IMPORTABLE, {
            "exception_class_path": class_path(TaskNotImportable),
            "traceback": (
                f"{TaskNotImportable.__name__}: {exc} in this worker ({cause}). A "
                "deploy may be in progress, or this worker runs older code than "
                "the code that enqueued the job.\n\n" + describe(why)["traceback"]
            ),
        }
    except TaskNotFound as exc:  # TaskNeverImportable too
        return Kind.NOT_A_TASK, error_of(exc)


def job_context(task: Task, job: dict[str, Any]) -> JobContext:
    """The context a ``takes_context=True`` task gets (see django_jobs.context)."""
    return JobContext(
        task_result=running_result(task, job),
        job_id=job["id"],
        queue=job["queue"],
        deadline=parse_datetime(job["reserved_until"]),
        last_checkpoint=job["checkpoint"],
        holder=_channel,
    )


def running_result(task: Task, job: dict[str, Any]) -> JobResult:
    """The TaskResult a task with ``takes_context`` sees while it runs."""
    return job_result(
        task,
        job["id"],
        TaskResultStatus.RUNNING,
        backend=job["backend"],
        args=job["args"],
        kwargs=job["kwargs"],
        enqueued_at=_datetime(job["enqueued_at"]),
        started_at=_datetime(job["started_at"]),
        last_attempted_at=_datetime(job["last_attempted_at"]),
        worker_ids=job["worker_ids"],
    )


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
