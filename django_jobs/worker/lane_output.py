"""What lane jobs print: each job's lines in its own pipe, in one process.

A child that runs one job at a time points file descriptors 1 and 2 at the
job's pipe (child.print_into). A lane child runs many jobs at once, so it
cannot: the file descriptors are the process's, and the jobs take turns in
its event loop many times a second. Python's output is routed instead:
``sys.stdout`` and ``sys.stderr`` become proxies that write to the stream
of the job running now (a ContextVar: each job's asyncio task has its own
context, and so does every ``sync_to_async`` call it makes), or to the
child's own stream outside jobs. Logging handlers that wrote to the child's
stdout or stderr write to the proxies, so a job's log lines are its own too.

What C code or a subprocess writes to file descriptors 1 and 2 still goes
to the child's own pipe: the supervisor logs it as the child's, no job's.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import Any, TextIO

#: The output stream of the job running now (None: the child's own).
current: contextvars.ContextVar[TextIO | None] = contextvars.ContextVar(
    "django_jobs_lane_output", default=None
)


class Proxy:
    """``sys.stdout`` or ``sys.stderr`` of a lane child: writes to the
    running job's stream, or to the child's own one outside jobs (and once
    the job's is closed: a thread it left behind may print late)."""

    def __init__(self, own: TextIO) -> None:
        self._own = own

    def target(self) -> TextIO:
        stream = current.get()
        if stream is None or stream.closed:
            return self._own
        return stream

    def write(self, text: str) -> int:
        return self.target().write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        self.target().writelines(lines)

    def flush(self) -> None:
        self.target().flush()

    def __getattr__(self, name: str) -> Any:
        # fileno, isatty, encoding, buffer...: the stream written to now.
        return getattr(self.target(), name)


def open_stream(fd: int) -> TextIO:
    """A job's stream on its pipe: line-buffered, so that its lines reach the
    supervisor as they are printed; what does not encode is escaped, never
    an error in the job."""
    return open(  # closed by close_stream, when the job ends
        fd, "w", buffering=1, encoding="utf-8", errors="backslashreplace"
    )


def close_stream(stream: TextIO | None) -> None:
    """Flush and close a job's stream: every line it printed is in its pipe,
    and the pipe's end tells the supervisor there will be no more."""
    if stream is None:
        return
    with contextlib.suppress(Exception):
        stream.flush()
    with contextlib.suppress(Exception):
        stream.close()


def close_fd(fd: int | None) -> None:
    """Close the pipe of a job that never ran."""
    if fd is not None:
        with contextlib.suppress(OSError):
            os.close(fd)


@contextlib.contextmanager
def routed() -> Iterator[None]:
    """While the lane runs: Python's stdout and stderr, and the logging
    handlers that wrote to them, write to the running job's stream; put
    back as they were after."""
    own = {"stdout": sys.stdout, "stderr": sys.stderr}
    proxies = {name: Proxy(stream) for name, stream in own.items()}
    # The streams each proxy stands for (the interpreter's own ones too: a
    # handler made before the child replaced them still holds them).
    stands_for = [
        (own["stdout"], proxies["stdout"]),
        (sys.__stdout__, proxies["stdout"]),
        (own["stderr"], proxies["stderr"]),
        (sys.__stderr__, proxies["stderr"]),
    ]
    repointed = []
    for handler in _stream_handlers():
        for stream, proxy in stands_for:
            if stream is not None and handler.stream is stream:
                repointed.append((handler, stream))
                handler.setStream(proxy)
                break
    sys.stdout, sys.stderr = proxies["stdout"], proxies["stderr"]
    try:
        yield
    finally:
        sys.stdout, sys.stderr = own["stdout"], own["stderr"]
        for handler, stream in repointed:
            with contextlib.suppress(Exception):
                handler.setStream(stream)


def _stream_handlers() -> list[logging.StreamHandler]:
    """Every StreamHandler of a logger (files excepted: not ours to route)."""
    loggers = [logging.getLogger()]
    loggers += [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    found = []
    for logger in loggers:
        for handler in logger.handlers:
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and handler not in found
            ):
                found.append(handler)
    return found
