"""What /proc says of a process tree: resident memory and CPU time.

The supervisor reads it to watch jobs with a memory or CPU limit
(resources.py). A job's process is the leader of its own process group (the
zygote makes it so), and what it forks stays in that group unless it leaves
on purpose; a process that leaves it (``setsid``) while its parent lives is
still found as a descendant. One scan of /proc serves every child watched in
a turn: ``/proc/<pid>/task/<tid>/children`` would spare it, but many kernels
are built without it (CONFIG_PROC_CHILDREN), and a scan of a few hundred
``stat`` files costs well under a millisecond.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: Whether this system has a /proc to read (Linux): without it, no watch.
AVAILABLE = os.path.exists("/proc/self/stat")


@dataclass(frozen=True, slots=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` the watch needs."""

    ppid: int
    pgrp: int
    #: utime + stime + cutime + cstime (its own, and its reaped children's), s.
    cpu: float
    #: Resident set size, bytes.
    rss: int


def read_stat(pid: int) -> Stat | None:
    """One process's ``stat``; None if it is gone (or unreadable)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: fields follow the last ")".
    fields = data[data.rindex(b")") + 2 :].split()
    try:
        ticks = sum(int(value) for value in fields[11:15])
        return Stat(
            int(fields[1]), int(fields[2]), ticks / TICKS, int(fields[21]) * PAGE
        )
    except (IndexError, ValueError):
        return None


def scan() -> dict[int, Stat]:
    """Every process this worker can see, by pid."""
    found = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := read_stat(int(name))) is not None:
            found[int(name)] = stat
    return found


def tree(root: int, table: dict[int, Stat]) -> set[int]:
    """``root``, the processes of its group and their descendants, and its
    own descendants (in any group)."""
    members = {pid for pid, stat in table.items() if stat.pgrp == root}
    if root in table:
        members.add(root)
    children: dict[int, list[int]] = {}
    for pid, stat in table.items():
        children.setdefault(stat.ppid, []).append(pid)
    todo = list(members)
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in members:
                members.add(child)
                todo.append(child)
    return members


def usage(members: set[int], table: dict[int, Stat]) -> tuple[int, float]:
    """Resident bytes and CPU seconds of ``members``, summed. Pages they
    share (with the fork server, with each other) count once per process,
    as ``ps`` and the kernel's ``ru_maxrss`` count them."""
    stats = [table[pid] for pid in members if pid in table]
    return sum(stat.rss for stat in stats), sum(stat.cpu for stat in stats)
