"""Small process helpers: parent-death signals and describing exit statuses."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
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
