"""The chaos loop: one fault at a time, at random intervals, each one recorded.

Every action is an ``Event`` with the wall-clock time it began and ended and
the identities ("pid@start") of the processes it hit, so the report can tell
whether a duplicate falls in the window the contract allows. Actions are
drawn from a shuffled deck (every kind comes up in every round), so even a
short soak covers them all; the seed makes the sequence repeatable.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from . import procs
from .instance import Monitor, PrivateMariaDB, PrivatePostgres
from .timing import OPTIONS
from .workers import SHUTDOWN_TIMEOUT, Slot, Workers, processes_of

#: How many of each action a round of the deck holds.
DECK = {
    "kill_child": 3,
    "kill_supervisor": 2,
    "terminate_connections": 2,
    "stop_worker": 2,
    "kill_fork_server": 1,
    "restart_database": 1,
    "term_worker": 1,
    "term_group": 1,
}
#: The actions that ask a worker to stop gracefully: each must end in a drain
#: (runs in flight finish, or go back uncounted at the shutdown timeout).
GRACEFUL_STOPS = ("term_worker", "term_group")
#: A SIGTERMed worker must be gone this long after its shutdown timeout and
#: kill grace, or it counts as stuck and is killed.
STOP_MARGIN = 3.0
BUSY_RUNS = """
    SELECT s.pid, s.pid_start, s.ppid, s.ppid_start, s.sup, s.sup_start
    FROM soak_row s
    WHERE s.event = 'start' AND s.at > clock_timestamp() - interval '3 seconds'
      AND NOT EXISTS (SELECT 1 FROM soak_row d WHERE d.run = s.run AND d.event = 'done')
"""
#: The same on MariaDB (its TIMESTAMP column holds the row's time to the microsecond).
BUSY_RUNS_MYSQL = BUSY_RUNS.replace(
    "clock_timestamp() - interval '3 seconds'", "NOW(6) - INTERVAL 3 SECOND"
)


@dataclass
class Event:
    action: str
    at: float
    until: float = 0.0
    slot: int | None = None
    #: Identities of the processes signalled (or whose connections were cut).
    hits: list[str] = field(default_factory=list)
    #: The supervisor of the worker acted upon, for the reader.
    worker: str = ""
    detail: str = ""


class Chaos:
    def __init__(
        self,
        workers: Workers,
        instance: PrivatePostgres | PrivateMariaDB,
        rng: random.Random,
        log: Path,
        interval: float,
    ) -> None:
        self.workers = workers
        self.instance = instance
        self.monitor = Monitor(instance)
        self.rng = rng
        self.log = log
        self.interval = interval
        self.events: list[Event] = []
        self.deck: list[str] = []
        self.next_at = time.time() + self.pause()
        self.stopped: dict[int, tuple[Event, list[procs.Proc]]] = {}
        self.busy_runs = BUSY_RUNS_MYSQL if instance.vendor == "mysql" else BUSY_RUNS

    def pause(self) -> float:
        return self.rng.uniform(0.5, 1.5) * self.interval

    def draw(self) -> str:
        if not self.deck:
            self.deck = [name for name, n in DECK.items() for _ in range(n)]
            self.rng.shuffle(self.deck)
        return self.deck.pop()

    def tick(self, now: float) -> None:
        """Resume stopped workers when due, police SIGTERMs, maybe act."""
        self.tick_stops(now)
        if now >= self.next_at:
            action = self.draw()
            event = getattr(self, action)(now)
            if event is not None:
                self.record(event)
            self.next_at = time.time() + self.pause()

    def tick_stops(self, now: float) -> None:
        """Resume stopped workers when due; kill those that ignore a SIGTERM."""
        limit = SHUTDOWN_TIMEOUT + OPTIONS["KILL_GRACE"] + STOP_MARGIN
        for slot in self.workers.slots:
            if slot.stopped_until is not None and now >= slot.stopped_until:
                self.resume(slot)
            terminated = slot.terminated_at
            if terminated is not None and slot.running and now > terminated + limit:
                self.stuck_stop(slot)

    def record(self, event: Event) -> None:
        if not event.until:
            event.until = time.time()
        self.events.append(event)
        with open(self.log, "a") as file:
            file.write(json.dumps(asdict(event)) + "\n")

    def pick(self) -> tuple[Slot, procs.Proc] | None:
        """A random worker that runs and is neither stopped nor stopping."""
        candidates = [(s, sup) for s in self.workers.live() if (sup := s.supervisor())]
        return self.rng.choice(candidates) if candidates else None

    def pick_busy(self) -> tuple[Slot, procs.Proc] | None:
        """Like ``pick``, among the workers with a run in flight if the
        database names any (a stop then has something to drain)."""
        rows = self.monitor.query(self.busy_runs) or []
        busy = {f"{sup}@{sup_start}" for *_, sup, sup_start in rows}
        candidates = [
            (s, sup)
            for s in self.workers.live()
            if (sup := s.supervisor()) and sup.identity in busy
        ]
        return self.rng.choice(candidates) if candidates else self.pick()

    def event(self, action: str, now: float, slot: Slot, sup: procs.Proc) -> Event:
        return Event(action, now, slot=slot.index, worker=sup.identity)

    @staticmethod
    def signal(proc: procs.Proc, signum: int) -> bool:
        """Send ``signum`` to this very process, if it still runs."""
        if not procs.alive(proc):
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signum)
            return True
        return False

    # The actions: each returns the event, or None when it found no target.

    def kill_supervisor(self, now: float) -> Event | None:
        if (picked := self.pick()) is None:
            return None
        slot, sup = picked
        event = self.event("kill_supervisor", time.time(), slot, sup)
        slot.current.expected = "SIGKILL"
        self.signal(sup, signal.SIGKILL)
        event.hits = [sup.identity]
        return event

    def kill_fork_server(self, now: float) -> Event | None:
        if (picked := self.pick()) is None:
            return None
        slot, sup = picked
        zygotes = procs.children(sup, procs.everything())
        if not zygotes:
            return None
        event = self.event("kill_fork_server", time.time(), slot, sup)
        slot.current.expected = "fork server killed"
        for zygote in zygotes:
            self.signal(zygote, signal.SIGKILL)
        event.hits = [z.identity for z in zygotes]
        return event

    def kill_child(self, now: float) -> Event | None:
        live = {
            sup.identity: (s, sup)
            for s in self.workers.live()
            if (sup := s.supervisor())
        }
        busy = []
        rows = self.monitor.query(self.busy_runs) or []
        for pid, pid_start, _, _, sup, sup_start in rows:
            if f"{sup}@{sup_start}" in live:
                child = procs.stat(pid)
                if child is not None and child.start == pid_start:
                    busy.append((child, live[f"{sup}@{sup_start}"]))
        if not busy:  # the database is down, or nothing runs: any child
            everyone = procs.everything()
            for slot, sup in live.values():
                for zygote in procs.children(sup, everyone):
                    busy += [(c, (slot, sup)) for c in procs.children(zygote, everyone)]
        if not busy:
            return None
        child, (slot, sup) = self.rng.choice(busy)
        event = self.event("kill_child", time.time(), slot, sup)
        if self.signal(child, signal.SIGKILL):
            event.hits = [child.identity]
        return event

    def stop_worker(self, now: float) -> Event | None:
        """SIGSTOP a supervisor (or its whole worker) past WORKER_TIMEOUT and its
        jobs' leases; ``resume`` sends SIGCONT later. One at a time."""
        if self.stopped or (picked := self.pick()) is None:
            return None
        slot, sup = picked
        whole = self.rng.random() < 0.5
        targets = processes_of(sup) if whole else [sup]
        seconds = self.rng.uniform(
            OPTIONS["WORKER_TIMEOUT"] + 0.5, OPTIONS["DEFAULT_TTR"] + 2
        )
        event = self.event("stop_worker", time.time(), slot, sup)
        event.detail = f"{'whole worker' if whole else 'supervisor'} for {seconds:.1f}s"
        stopped = [p for p in targets if self.signal(p, signal.SIGSTOP)]
        event.hits = [p.identity for p in stopped]
        slot.stopped_until = time.time() + seconds
        self.stopped[slot.index] = (event, stopped)
        return None  # recorded when it resumes, with its true length

    def resume(self, slot: Slot) -> None:
        event, stopped = self.stopped.pop(slot.index, (None, []))
        for proc in stopped:
            self.signal(proc, signal.SIGCONT)
        slot.stopped_until = None
        if event is not None:
            event.until = time.time()
            event.detail += f" (stopped {event.until - event.at:.2f}s)"
            self.record(event)

    def resume_all(self) -> None:
        for slot in self.workers.slots:
            if slot.stopped_until is not None:
                self.resume(slot)

    def term_worker(self, now: float) -> Event | None:
        """A graceful stop (a deploy): SIGTERM; it must exit in time."""
        if (picked := self.pick()) is None:
            return None
        slot, sup = picked
        event = self.event("term_worker", time.time(), slot, sup)
        slot.current.expected = "SIGTERM"
        slot.terminated_at = time.time()
        self.signal(sup, signal.SIGTERM)
        event.hits = [sup.identity]
        return event

    def term_group(self, now: float) -> Event | None:
        """A graceful stop as process managers send it: SIGTERM to the
        worker's process group (supervisord's stopasgroup, honcho, dumb-init:
        the supervisor and its fork server), or to every process of the
        worker (systemd's KillMode=control-group: the children and what their
        jobs started too). Each process gets one signal; the worker must
        drain and exit in time, as after term_worker."""
        if (picked := self.pick_busy()) is None:
            return None
        slot, sup = picked
        every = self.rng.random() < 0.5
        everyone = processes_of(sup)
        event = self.event("term_group", time.time(), slot, sup)
        slot.current.expected = "SIGTERM"
        slot.terminated_at = time.time()
        group = [p for p in everyone if p.pgrp == sup.pid and procs.alive(p)]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(sup.pid, signal.SIGTERM)
        others = [p for p in everyone if p.pgrp != sup.pid] if every else []
        hit = group + [p for p in others if self.signal(p, signal.SIGTERM)]
        event.hits = [p.identity for p in hit]
        event.detail = (
            f"{'every process' if every else 'process group'}: {len(hit)} process(es)"
        )
        return event

    def stuck_stop(self, slot: Slot) -> None:
        sup = slot.supervisor()
        event = Event("kill_stuck_worker", time.time(), slot=slot.index)
        event.detail = "did not exit after SIGTERM"
        slot.current.stuck = True
        if sup is not None:
            event.worker = sup.identity
            event.hits = [sup.identity]
            slot.current.expected = "SIGKILL (stuck after SIGTERM)"
            self.workers.kill(slot)
        slot.terminated_at = None
        self.record(event)

    def terminate_connections(self, now: float) -> Event | None:
        """End one worker's connections, or every worker's (the supervisors'):
        pg_terminate_backend on PostgreSQL, KILL CONNECTION on MariaDB."""
        live = [(s, sup) for s in self.workers.live() if (sup := s.supervisor())]
        if not live:
            return None
        chosen = live if self.rng.random() < 0.3 else [self.rng.choice(live)]
        event = Event("terminate_connections", time.time())
        if len(chosen) == 1:
            event.slot, event.worker = chosen[0][0].index, chosen[0][1].identity
        rows = self.instance.terminate_connections(
            self.monitor, [sup.pid for _, sup in chosen]
        )
        if rows is None:
            return None
        cut = {name for ok, name in rows if ok}
        event.hits = [sup.identity for _, sup in chosen if f"soak-{sup.pid}" in cut]
        event.detail = f"{len(rows)} connection(s) of {len(chosen)} worker(s)"
        return event

    def restart_database(self, now: float) -> Event:
        """Stop the database (PostgreSQL: fast or immediate; MariaDB: a clean
        shutdown or SIGKILL), keep it down a moment, start it."""
        mode = self.rng.choice(list(self.instance.stop_modes))
        down = self.rng.uniform(0.2, 2.0)
        event = Event("restart_database", time.time(), detail=f"-m {mode}")
        self.monitor.close()
        self.instance.stop(mode)
        time.sleep(down)
        self.instance.start()
        event.until = time.time()
        event.detail += f", down {event.until - event.at:.2f}s"
        return event
