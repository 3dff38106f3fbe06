"""The soak's worker processes: real ``manage.py runworker`` supervisors.

Each slot runs one worker at a time; when it exits (killed by the chaos loop,
stopped, or of its own accord) the driver starts another in the slot. Every
incarnation is recorded (pid@start, when it started and ended, its exit code,
its log file), so the report can tell expected exits from the others and find
the log lines about a job.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procs
from .kinds import LANE_QUEUE

ROOT = Path(__file__).resolve().parents[2]
#: --jobs-per-child of each slot, in turn: single jobs and short batches.
JOBS_PER_CHILD = (1, 4, 1, 25)
SHUTDOWN_TIMEOUT = 2.0
RESTART_DELAY = 0.3


def _die_with_parent() -> None:
    """In a worker, before exec: die if the driver dies (no orphan workers)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


@dataclass
class Incarnation:
    slot: int
    pid: int
    identity: str
    log: Path
    started: float
    ended: float | None = None
    code: int | None = None
    #: Why the driver expects it to end ("SIGKILL", "fork server killed",
    #: "SIGTERM"...), set by whoever caused it; None: it should not end.
    expected: str | None = None
    #: Seconds from SIGTERM to exit (graceful stops only).
    stop_seconds: float | None = None
    #: It did not exit within the shutdown timeout plus the kill grace of a
    #: SIGTERM, and had to be killed.
    stuck: bool = False

    def summary(self) -> dict:
        return {
            "slot": self.slot,
            "identity": self.identity,
            "log": str(self.log),
            "started": self.started,
            "ended": self.ended,
            "code": self.code,
            "expected": self.expected,
            "stop_seconds": self.stop_seconds,
            "stuck": self.stuck,
        }

    @property
    def announced(self) -> bool:
        """Whether it logged that it started (it had registered and listened)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return False
        return re.search(r"\bworker \S+ started: ", text) is not None

    @property
    def gave_up_outcomes(self) -> bool:
        """Whether it stopped with outcomes it could not record, the database
        away (it exits 1: their jobs stay reserved until rescued)."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return False
        return "outcome(s) not recorded (the database is unavailable)" in text

    @property
    def died_with_traceback(self) -> bool:
        """Whether it ended on an unhandled exception (a traceback after its
        last log record), rather than by a signal or its own decision.

        A process killed by a signal printed nothing at its end: a traceback
        at the end of its log was logged (by logger.exception), not fatal.
        """
        if self.code is None or self.code < 0:
            return False
        try:
            lines = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return False
        records = [i for i, line in enumerate(lines) if line[:2] == "20"]
        after = lines[records[-1] + 1 :] if records else lines
        return any(
            line.startswith("Traceback (most recent call last)") for line in after
        )


@dataclass
class Slot:
    index: int
    jobs_per_child: int
    #: ``--concurrency``: N, or MIN:MAX for the autoscaling slot.
    concurrency: str
    #: The queues it serves (none: every queue but the async lane's).
    queues: tuple[str, ...] = ()
    process: subprocess.Popen | None = None
    current: Incarnation | None = None
    restart_at: float = 0.0
    #: Until when the chaos loop keeps it stopped (SIGSTOP), if it does.
    stopped_until: float | None = None
    #: SIGTERM sent at this time: it must be gone by the deadline.
    terminated_at: float | None = None
    history: list[Incarnation] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def supervisor(self) -> procs.Proc | None:
        """The live supervisor of this slot, as /proc sees it."""
        if not self.running:
            return None
        proc = procs.stat(self.process.pid)
        return proc if proc and proc.identity == self.current.identity else None


def size(index: int, concurrency: int) -> str:
    """The third worker autoscales (from 1 to one more than the others), so
    the chaos meets a worker that grows and shrinks."""
    return f"1:{concurrency + 1}" if index == AUTOSCALING_SLOT else str(concurrency)


#: The slot of the autoscaling worker (one job per child, as slot 0).
AUTOSCALING_SLOT = 2


class Workers:
    def __init__(
        self, count: int, concurrency: int, database_url: str, run_dir: Path
    ) -> None:
        self.run_dir = run_dir
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.soak.settings",
            "DATABASE_URL": database_url,
            "PYTHONUNBUFFERED": "1",
        }
        self.slots = [
            Slot(i, JOBS_PER_CHILD[i % len(JOBS_PER_CHILD)], size(i, concurrency))
            for i in range(count)
        ]
        # One more worker runs the async lane's queue: one child, many jobs.
        self.slots.append(Slot(count, 1, "1", queues=(LANE_QUEUE,)))
        self.keep_running = True

    def start(self, slot: Slot) -> None:
        number = len(slot.history) + 1
        log = self.run_dir / f"worker-{slot.index}-{number}.log"
        with open(log, "wb") as output:
            slot.process = subprocess.Popen(
                [
                    sys.executable,
                    str(ROOT / "manage.py"),
                    "runworker",
                    "--concurrency",
                    slot.concurrency,
                    "--jobs-per-child",
                    str(slot.jobs_per_child),
                    "--shutdown-timeout",
                    str(SHUTDOWN_TIMEOUT),
                    "--poll-interval",
                    "0.5",
                    *[arg for name in slot.queues for arg in ("--queue", name)],
                ],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        proc = procs.stat(slot.process.pid)
        identity = proc.identity if proc else f"{slot.process.pid}@?"
        slot.current = Incarnation(
            slot.index, slot.process.pid, identity, log, time.time()
        )
        slot.history.append(slot.current)
        slot.stopped_until = slot.terminated_at = None

    def start_all(self) -> None:
        for slot in self.slots:
            self.start(slot)

    def poll(self, now: float) -> list[Incarnation]:
        """Notice workers that exited, restart slots; return the ended ones."""
        ended = []
        for slot in self.slots:
            if slot.process is not None and slot.current.ended is None:
                code = slot.process.poll()
                if code is not None:
                    ended.append(self.ended(slot, code, now))
            gone = slot.current.ended is not None
            if gone and self.keep_running and now >= slot.restart_at:
                self.start(slot)
        return ended

    def ended(self, slot: Slot, code: int, now: float) -> Incarnation:
        gone = slot.current
        gone.ended, gone.code = now, code
        if slot.terminated_at is not None and gone.expected == "SIGTERM":
            gone.stop_seconds = now - slot.terminated_at
        slot.restart_at = now + RESTART_DELAY
        slot.stopped_until = slot.terminated_at = None
        return gone

    def live(self) -> list[Slot]:
        """Slots with a running supervisor that is not stopped nor stopping."""
        return [
            s
            for s in self.slots
            if s.running and s.stopped_until is None and s.terminated_at is None
        ]

    def terminate_all(self, timeout: float) -> None:
        """SIGTERM every worker; SIGKILL (and mark) those not gone in ``timeout``."""
        self.keep_running = False
        now = time.time()
        for slot in self.slots:
            if slot.running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.process.pid, signal.SIGCONT)
                    os.kill(slot.process.pid, signal.SIGTERM)
                slot.current.expected = "SIGTERM"
                slot.terminated_at = now
        deadline = time.monotonic() + timeout
        while any(s.running for s in self.slots) and time.monotonic() < deadline:
            self.poll(time.time())
            time.sleep(0.05)
        self.poll(time.time())
        for slot in self.slots:
            if slot.running:
                slot.current.stuck = True
        self.kill_all()

    def kill(self, slot: Slot) -> None:
        """SIGKILL a worker's supervisor and every process of its session.

        Its fork server and children die with it anyway (parent-death
        signals); this also catches anything that escaped.
        """
        leader = slot.supervisor()
        if leader is None:
            return
        for proc in processes_of(leader):
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)

    def kill_all(self) -> None:
        """SIGKILL every worker this soak started (by pid), and reap them."""
        self.keep_running = False
        for slot in self.slots:
            if not slot.running:
                continue
            self.kill(slot)
            with contextlib.suppress(subprocess.TimeoutExpired):
                slot.process.wait(10)
            if slot.process.returncode is not None and slot.current.ended is None:
                self.ended(slot, slot.process.returncode, time.time())

    def incarnations(self) -> list[Incarnation]:
        return [each for slot in self.slots for each in slot.history]


def processes_of(supervisor: procs.Proc) -> list[procs.Proc]:
    """Every process of a worker, the supervisor first: its session (each
    worker is started in a session of its own), as systemd's cgroup of the
    unit would hold it. The fork server shares the supervisor's process group;
    each child leads a group of its own, with whatever the job started."""
    found = [
        proc
        for proc in procs.everything()
        if proc.session == supervisor.pid and proc.start >= supervisor.start
    ]
    return sorted(found, key=lambda proc: proc.pid != supervisor.pid)
