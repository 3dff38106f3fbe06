"""Process identities read from /proc, shared by the jobs and the chaos loop.

Linux reuses process ids (pid_max is often 32768, and a soak forks thousands
of children), so a pid alone cannot tie a chaos action to a run. A process is
named by its pid and its start time (clock ticks since boot, field 22 of
``/proc/<pid>/stat``): "pid@start". Both sides record that.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    pgrp: int
    session: int
    start: int
    state: str

    @property
    def identity(self) -> str:
        return f"{self.pid}@{self.start}"


def stat(pid: int) -> Proc | None:
    """The process ``pid`` as /proc sees it now, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name may contain spaces and parentheses: split after the last.
    fields = text[text.rindex(")") + 2 :].split()
    return Proc(
        pid=pid,
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start=int(fields[19]),
        state=fields[0],
    )


def alive(proc: Proc) -> bool:
    """Whether this very process (not a later one with its pid) still runs."""
    now = stat(proc.pid)
    return now is not None and now.start == proc.start and now.state not in "ZX"


def everything() -> list[Proc]:
    """Every process on the machine (those that vanish meanwhile are skipped)."""
    procs = []
    for name in os.listdir("/proc"):
        if name.isdigit() and (proc := stat(int(name))) is not None:
            procs.append(proc)
    return procs


def in_session(session: int) -> list[Proc]:
    """The live processes of a session (a worker started in a session of its
    own: its supervisor, fork server and children; zombies left out)."""
    return [p for p in everything() if p.session == session and p.state not in "ZX"]


def children(parent: Proc, procs: list[Proc]) -> list[Proc]:
    """The live children of ``parent`` among ``procs`` (zombies left out)."""
    return [p for p in procs if p.ppid == parent.pid and p.state not in "ZX"]


def chain() -> tuple[Proc | None, Proc | None, Proc | None]:
    """This process, its parent and its grandparent.

    In a job: the child, the worker's fork server, the worker's supervisor.
    """
    me = stat(os.getpid())
    parent = stat(me.ppid) if me else None
    grandparent = stat(parent.ppid) if parent else None
    return me, parent, grandparent
