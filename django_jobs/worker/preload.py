"""Task modules imported once, by the fork server, so children inherit them.

The supervisor imports every app's ``tasks`` module (and the modules of the
tasks in ``SCHEDULES``) before it forks the fork server. A task may live in
any module, though: ``jobs.py``, ``emails.py``, ``services/billing.py``. The
first child that runs a job of such a module imports it itself; meanwhile
the supervisor asks the fork server to import it too, so that every child
forked after that inherits it and pays nothing.

The fork server must stay safe to fork: no database connection, no thread,
no socket. So it first forks a *probe* that imports the module and says what
the import left behind; only a module whose import leaves none of these is
imported by the fork server itself. Any other is left to each child (the
supervisor logs a warning that names the module and what it did), as is a
module that cannot be imported (its jobs say why).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .process import set_parent_death_signal

if TYPE_CHECKING:
    from ..models import Job
    from .zygote import ZygoteHandle

#: A probe that has not answered by then is killed: the module is left to
#: the children (an import that hangs would hang the fork server too).
PROBE_TIMEOUT = 30.0
#: Seconds before the zygote is asked again for a module it could not import.
PRELOAD_RETRY = 60.0


def module_of(task_path: str) -> str:
    return task_path.rpartition(".")[0]


class Preloads:
    """The supervisor's side: the task modules it asked the fork server for."""

    def __init__(self) -> None:
        #: True once the fork server imported it, False if it will not; None
        #: while it is at it.
        self.modules: dict[str, bool | None] = {}
        #: Modules that could not be imported, and when to ask again.
        self.retry_at: dict[str, float] = {}

    def to_ask(self, task_paths: Iterable[str], now: float) -> list[str]:
        """The modules of these tasks to ask the fork server for now: each
        once, and one that did not import again after a while."""
        asked = []
        for path in task_paths:
            module = module_of(path)
            if not module:
                continue
            if module in self.retry_at:  # it did not import: maybe now
                if now < self.retry_at[module]:
                    continue
                del self.retry_at[module]
            elif module in self.modules:  # asked already
                continue
            self.modules[module] = None
            asked.append(module)
        return asked

    def ask(self, zygote: ZygoteHandle | None, jobs: list[Job]) -> None:
        """Have the fork server import the modules of these jobs' tasks, once:
        the children forked after that inherit them."""
        if zygote is None:
            return
        for module in self.to_ask([job.task_path for job in jobs], time.monotonic()):
            zygote.preload(module)

    def answered(
        self, module: str, ok: bool, importable: bool, now: float | None = None
    ) -> None:
        """A module that did not import is asked for again later (a deploy
        may bring it); one that is unsafe to import, never."""
        now = time.monotonic() if now is None else now
        self.modules[module] = ok
        if not importable:
            self.retry_at[module] = now + PRELOAD_RETRY


def leftovers(before: set[str]) -> list[str]:
    """What an import left behind that a fork would share: threads,
    database connections, sockets. ``before``: the open sockets then."""
    found = []
    if threading.active_count() > 1:
        found.append("it starts a thread")
    if "django.db" in sys.modules:
        from django.db import connections

        if any(c.connection is not None for c in connections.all()):
            found.append("it opens a database connection")
    if _sockets() - before:
        found.append("it opens a socket")
    return found


def _sockets() -> set[str]:
    """The sockets open in this process, by inode ("socket:[123]").

    By what each descriptor points to, not by its number: listing the
    descriptors opens one, whose number a socket opened later may reuse.
    """
    sockets = set()
    try:
        descriptors = os.listdir("/proc/self/fd")
    except OSError:  # not Linux: threads and connections are still looked at
        return sockets
    for fd in descriptors:
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:"):
                sockets.add(target)
    return sockets


def probe(module: str) -> dict:
    """In a forked probe: import ``module`` and say whether it is safe."""
    before = _sockets()
    try:
        importlib.import_module(module)
    except BaseException as exc:  # SystemExit too: an import must not end us
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return {"ok": False, "why": why, "importable": False}
    found = leftovers(before)
    return {"ok": not found, "why": ", ".join(found)}


@dataclass
class Probe:
    pid: int
    module: str
    started: float


class Probes:
    """The fork server's running probes, by the read end of each one's pipe."""

    def __init__(self) -> None:
        self.running: dict[int, Probe] = {}

    def start(self, module: str, on_fork) -> int:
        """Fork a probe of ``module``; the pipe it will answer on."""
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the probe
            code = 1
            try:
                os.close(read_end)
                on_fork()
                set_parent_death_signal(signal.SIGKILL)
                os.write(write_end, json.dumps(probe(module)).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(write_end)
        self.running[read_end] = Probe(pid, module, time.monotonic())
        return read_end

    def answer(self, fd: int) -> tuple[str, dict]:
        """The module a probe looked at, and what it found."""
        found = self.running.pop(fd)
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(fd, 65536)
        os.close(fd)
        try:
            return found.module, json.loads(data)
        except ValueError:
            return found.module, {"ok": False, "why": "the probe died"}

    def late(self, now: float) -> list[int]:
        """The pipes of probes past their time (killed now)."""
        late = [fd for fd, p in self.running.items() if now - p.started > PROBE_TIMEOUT]
        for fd in late:
            with contextlib.suppress(OSError):
                os.kill(self.running[fd].pid, signal.SIGKILL)
        return late

    def owns(self, pid: int) -> bool:
        return any(p.pid == pid for p in self.running.values())


def import_here(module: str) -> dict:
    """In the fork server, after a clean probe: import ``module`` for good.

    Should this import leave what the probe's did not (a module that does not
    do the same thing twice), connections are closed at once and the rest is
    reported: it is the supervisor's to say.
    """
    before = _sockets()
    try:
        importlib.import_module(module)
    except BaseException as exc:
        why = f"{type(exc).__name__}: {exc}".splitlines()[0]
        return {"ok": False, "why": why, "importable": False}
    found = leftovers(before)
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()
    return {"ok": True, "why": ", ".join(found)}
