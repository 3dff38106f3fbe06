"""Small process helpers: parent-death signals, stop signals, exit statuses."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import sys

_PR_SET_PDEATHSIG = 1


@functools.cache
def _prctl():
    """libc's prctl, looked up once (in the zygote, before any child is forked)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def set_parent_death_signal(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies.

    Linux only (prctl); elsewhere a no-op, and the zygote's cleanup on losing
    the supervisor is the only safeguard.
    """
    prctl = _prctl()
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, signum, 0, 0, 0)
    if os.getppid() == 1:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)


def describe_status(status: int) -> str:
    """'exit code 3' or 'killed by signal 9 (SIGKILL)', from a wait status."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown"
        return f"killed by signal {number} ({name})"
    if os.WIFEXITED(status):
        return f"exit code {os.WEXITSTATUS(status)}"
    return f"wait status {status}"


def kill_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


#: The signals that ask a service to stop. Process managers often send them to
#: every process of a worker (systemd's KillMode=control-group, supervisord's
#: stopasgroup, honcho, dumb-init): stopping is the supervisor's decision.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def leave_stop_signals_to_the_supervisor() -> None:
    """In the fork server: SIGTERM and SIGINT do nothing.

    It must outlive the supervisor's drain. A handler that does nothing, not
    SIG_IGN: an ignored signal stays ignored across exec, in any program a
    module imported here (or a child forked from here) would start.
    """
    for signum in STOP_SIGNALS:
        signal.signal(signum, _do_nothing)


def _do_nothing(signum: int, frame: object) -> None:
    return None


def obey_only_the_supervisor(stop_pipe: int) -> None:
    """In a child: SIGTERM and SIGINT end it only when the supervisor says so.

    ``stop_pipe`` is the read end of a pipe whose write end only the
    supervisor holds; it closes it right before it sends SIGTERM to the
    child's process group (a ttr timeout, a cancel, a shutdown). A stop
    signal that arrives while the pipe is open came from elsewhere, to every
    process of the worker: the supervisor drains, and the job runs on.
    A Python handler, which exec resets: programs the job starts get the
    default dispositions, and processes it forks act as if it were not there.
    """
    handler = _StopHandler(stop_pipe)
    for signum in STOP_SIGNALS:
        signal.signal(signum, handler)


class _StopHandler:
    def __init__(self, stop_pipe: int) -> None:
        self.fd = stop_pipe
        self.pipe = _identity(stop_pipe)
        self.pid = os.getpid()

    def __call__(self, signum: int, frame: object) -> None:
        if os.getpid() == self.pid and not self.supervisor_stops():
            return  # a process manager's signal to the whole worker
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)  # the death it would have had

    def supervisor_stops(self) -> bool:
        """Whether the supervisor closed its end of the pipe. If the job
        closed ours (or put something else at its number), there is no
        telling: the signal then does what it would without this handler."""
        if self.pipe is None or _identity(self.fd) != self.pipe:
            return True
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(0))


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        found = os.fstat(fd)
    except OSError:
        return None
    return found.st_dev, found.st_ino


_MADV_HUGEPAGE = 14
_MADV_COLLAPSE = 25
_HUGE_PAGE = 2 * 1024 * 1024


def gather_into_huge_pages() -> int:
    """Back this process's anonymous memory with huge pages, where possible.

    A fork copies one page-table entry per 4 KiB page, and the exit of a child
    tears as many down: for a Django process of 50 MiB that is most of the
    cost of a child. With huge pages one entry covers 2 MiB. Linux 6.1+
    (MADV_COLLAPSE); elsewhere, or if refused, nothing changes. Returns the
    number of bytes it asked to collapse.
    """
    if not sys.platform.startswith("linux"):
        return 0
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return 0
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    asked = 0
    try:
        with open("/proc/self/maps") as maps:
            regions = [line.split() for line in maps]
    except OSError:
        return 0
    for fields in regions:
        path = fields[5] if len(fields) > 5 else ""
        if not fields[1].startswith("rw") or path not in ("", "[heap]"):
            continue
        low, high = (int(bound, 16) for bound in fields[0].split("-"))
        low = -(-low // _HUGE_PAGE) * _HUGE_PAGE
        high = high // _HUGE_PAGE * _HUGE_PAGE
        if high > low:
            madvise(low, high - low, _MADV_HUGEPAGE)
            if madvise(low, high - low, _MADV_COLLAPSE) == 0:
                asked += high - low
    return asked
