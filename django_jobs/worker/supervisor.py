"""The supervisor: one loop that claims, dispatches, records and watches.

It is single-threaded and never blocks on anything but ``select``: the
children's sockets, the zygote's reports, the LISTEN connection and a signal
wake-up pipe. Each turn of the loop records the outcomes that arrived, stops
children past their deadline, runs the duties that are due, keeps the pool of
children full and claims as many jobs as it has idle children.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import selectors
import signal
import socket
import time

from django.db import DatabaseError, connections
from django.utils.module_loading import autodiscover_modules

from .. import queue
from ..exceptions import JobError
from . import protocol
from .children import Child, Children
from .duties import Registry, Rescuer, new_worker_id
from .listener import Listener
from .options import WorkerOptions
from .outcomes import Recorder, log_job
from .process import describe_status

logger = logging.getLogger("django_jobs.worker")

DB_RETRY_DELAY = 1.0


class Supervisor:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.db = options.backend.db
        self.worker_id = new_worker_id()
        self.children = Children(options.jobs_per_child, options.config.KILL_GRACE)
        self.recorder = Recorder(options)
        self.registry = Registry(options, self.worker_id)
        self.rescuer = Rescuer(options)
        self.listener = Listener(self.db)
        self.selector = selectors.DefaultSelector()
        self.draining = False
        self.stop_now = False
        self.shutdown_deadline: float | None = None
        self.wake = True  # there may be ready jobs: claim at the next chance
        self.next_poll = 0.0
        self.claimed_total = 0
        self.idle_and_empty = False  # burst: the last claim found nothing
        self.exit_code = 0
        self.cpu_at_start = 0.0

    # Life cycle

    def run(self) -> int:
        """Run until told to stop (or, in burst mode, until idle); the exit code."""
        self.prepare_children()
        self.install_signal_handlers()
        try:
            self.registry.register()
            self.connect_listener()
            logger.info(
                "worker %s started: queues %s, concurrency %d, %d job(s) per child, "
                "database %r%s",
                self.worker_id,
                ", ".join(self.options.queues) or "(all)",
                self.options.concurrency,
                self.options.jobs_per_child,
                self.db,
                self.connection_pid(),
            )
            usage = resource.getrusage(resource.RUSAGE_SELF)
            self.cpu_at_start = usage.ru_utime + usage.ru_stime
            while not self.finished():
                self.turn()
        finally:
            self.close()
        return self.exit_code

    def prepare_children(self) -> None:
        """Import the task modules, then fork the zygote before any connection."""
        autodiscover_modules("tasks")
        connections.close_all()
        self.children.start_zygote()
        self.selector.register(
            self.children.zygote.sock, selectors.EVENT_READ, "zygote"
        )

    def install_signal_handlers(self) -> None:
        self.wakeup_r, self.wakeup_w = socket.socketpair()
        self.wakeup_r.setblocking(False)
        self.wakeup_w.setblocking(False)
        signal.set_wakeup_fd(self.wakeup_w.fileno())
        self.selector.register(self.wakeup_r, selectors.EVENT_READ, "signal")
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)

    def on_signal(self, signum: int, frame) -> None:
        if self.draining:
            self.stop_now = True
        self.draining = True
        self.signal_name = signal.Signals(signum).name

    def finished(self) -> bool:
        if self.children.busy or self.recorder.pending:
            return False
        if self.draining or self.stop_now:
            return True
        if self.options.max_jobs and self.claimed_total >= self.options.max_jobs:
            return True
        return self.options.burst and self.idle_and_empty

    def close(self) -> None:
        for busy in self.children.busy:  # only after a fatal error
            self.recorder.release(busy.job)
        self.children.close()
        self.listener.close()
        try:
            self.registry.deregister()
        except DatabaseError as exc:
            logger.error("could not remove worker %s's row: %s", self.worker_id, exc)
        signal.set_wakeup_fd(-1)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        logger.info(
            "worker %s stopped after %d job(s); supervisor CPU %.3f s; "
            "peak RSS supervisor %d KiB, children %d KiB%s",
            self.worker_id,
            self.claimed_total,
            usage.ru_utime + usage.ru_stime - self.cpu_at_start,
            usage.ru_maxrss,
            children.ru_maxrss,
            self.connection_pid(),
        )

    def connection_pid(self) -> str:
        """The server process of the supervisor's connection, for the logs."""
        connection = connections[self.db]
        if connection.vendor != "postgresql" or connection.connection is None:
            return ""
        return f", database connection pid {connection.connection.info.backend_pid}"

    # One turn of the loop

    def turn(self) -> None:
        for key, _ in self.selector.select(self.timeout()):
            handler = key.data
            if handler == "signal":
                self.on_wakeup()
            elif handler == "zygote":
                self.on_zygote()
            elif handler == "listen":
                self.on_notify()
            else:
                self.on_child(handler)
        if not self.recorder.flush():
            time.sleep(DB_RETRY_DELAY)
            return
        clock = time.monotonic()
        for late in self.children.enforce_deadlines(clock):
            log_job(logging.WARNING, late.job, "ran past its deadline; stopping it")
        self.run_duties(clock)
        if self.draining:
            self.drain(clock)
        else:
            self.replenish()
            self.claim(clock)

    def timeout(self) -> float:
        clock = time.monotonic()
        wake_at = [self.registry.next_run, self.rescuer.next_run]
        if deadline := self.children.next_deadline():
            wake_at.append(deadline)
        if self.draining and self.shutdown_deadline is not None:
            wake_at.append(self.shutdown_deadline)
        elif self.children.idle:
            wake_at.append(clock if self.wake else self.next_poll)
        return max(0.0, min(wake_at) - clock)

    def on_wakeup(self) -> None:
        try:
            while self.wakeup_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        if self.stop_now:
            logger.warning("second %s: stopping running jobs now", self.signal_name)
        elif self.draining and self.shutdown_deadline is None:
            logger.info(
                "%s: finishing %d running job(s) (up to %gs), claiming no more",
                self.signal_name,
                len(self.children.busy),
                self.options.shutdown_timeout,
            )

    def on_zygote(self) -> None:
        messages = self.children.zygote.read()
        if messages is None:
            logger.error("the worker's fork server died; stopping")
            self.selector.unregister(self.children.zygote.sock)
            self.fatal()
            return
        for message in messages:
            if message["op"] == "forked":
                new = self.children.forked(message["id"], message["pid"])
                self.selector.register(new.sock, selectors.EVENT_READ, new)
            elif message["op"] == "exited":
                self.on_exit(message["pid"], message["status"])

    def on_notify(self) -> None:
        queues = self.listener.queues()
        if queues is None:
            self.selector.unregister(self.listener)
            return
        served = self.options.queues
        if not served or any(name in served for name in queues):
            self.wake = True

    def on_child(self, busy: Child) -> None:
        if busy.pid not in self.children.by_pid:
            return  # its exit was handled earlier in this turn
        for message in busy.reader.read():
            self.on_message(busy, message)
        if busy.reader.closed:
            self.selector.unregister(busy.sock)

    def on_message(self, sender: Child, message: dict) -> None:
        job = sender.job
        if job is None or message.get("id") != job.pk:
            logger.error("child %d sent an unexpected message: %r", sender.pid, message)
            return
        op = message["op"]
        if op == "started":
            self.recorder.job_started(job)
        elif op == "touch":
            self.on_touch(sender, message.get("seconds"))
        elif op == "outcome":
            sender.outcome = message
            self.record_outcome(sender)

    def on_touch(self, sender: Child, seconds: float | None) -> None:
        job = sender.job
        seconds = float(seconds) if seconds else float(job.ttr)
        try:
            deadline = queue.touch(
                job.pk, token=job.claim_token, seconds=seconds, using=self.db
            )
        except (JobError, DatabaseError) as exc:
            log_job(logging.ERROR, job, "touch refused: %s", exc)
            reply = {"op": "touched", "ok": False, "error": str(exc)}
        else:
            job.reserved_until = deadline
            sender.deadline = time.monotonic() + seconds
            reply = {"op": "touched", "ok": True, "deadline": deadline.isoformat()}
        protocol.send(sender.sock, reply)

    def record_outcome(self, sender: Child) -> None:
        """Queue the outcome of ``sender``'s job for recording; free the child."""
        job, outcome = sender.job, sender.outcome
        if outcome.get("ok"):
            self.recorder.succeeded(job, outcome.get("value"))
        elif outcome.get("unrunnable"):
            error = outcome["error"]
            self.recorder.unrunnable(
                job, error["exception_class_path"], error["traceback"]
            )
        else:
            error = outcome["error"]
            self.recorder.failed(job, error["exception_class_path"], error["traceback"])
        sender.job = None
        sender.jobs_run += 1
        self.registry.jobs_in_hand = len(self.children.busy)
        self.wake = True

    def on_exit(self, pid: int, status: int) -> None:
        gone = self.children.by_pid.get(pid)
        if gone is None:
            return
        if not gone.reader.closed:
            for message in gone.reader.read():  # what it said before dying
                self.on_message(gone, message)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(gone.sock)
        if gone.job is not None:
            self.lost_child(gone, describe_status(status))
        self.children.remove(gone)

    def lost_child(self, gone: Child, how: str) -> None:
        """A child died holding a job, without an outcome."""
        job = gone.job
        gone.job = None
        if gone.stopping == "shutdown":
            self.recorder.release(job)
        elif gone.stopping == "timeout":
            self.recorder.timed_out(job, job.ttr)
        else:
            self.recorder.crashed(job, how)
        self.registry.jobs_in_hand = len(self.children.busy)

    def fatal(self) -> None:
        """The zygote is gone: its children die with it; count their attempts."""
        for gone in self.children:
            if gone.job is not None:
                self.recorder.crashed(gone.job, "the worker's fork server died")
                gone.job = None
            self.children.remove(gone)
        self.exit_code = 1
        self.draining = self.stop_now = True

    # Duties, claims, shutdown

    def run_duties(self, clock: float) -> None:
        self.registry.maybe_run(clock)
        self.rescuer.maybe_run(clock)
        self.connect_listener()

    def connect_listener(self) -> None:
        """(Re)open the LISTEN connection when there is none (PostgreSQL only)."""
        if (
            self.listener.available
            and self.listener.connection is None
            and self.listener.connect()
        ):
            self.selector.register(self.listener, selectors.EVENT_READ, "listen")

    def replenish(self) -> None:
        """Keep one child per slot, forked ahead of the job it will run."""
        wanted = self.options.concurrency
        if self.options.max_jobs:
            wanted = min(wanted, self.options.max_jobs - self.claimed_total)
        while self.children.active_count() < wanted:
            self.children.fork()

    def claim(self, clock: float) -> None:
        idle = self.children.idle
        if not idle or not (self.wake or clock >= self.next_poll):
            return
        limit = len(idle)
        if self.options.max_jobs:
            limit = min(limit, self.options.max_jobs - self.claimed_total)
        if limit < 1:
            return
        try:
            jobs = queue.claim(
                worker_id=self.worker_id,
                queues=self.options.queues or None,
                limit=limit,
                backend=self.options.backend.alias,
                using=self.db,
            )
        except DatabaseError as exc:
            logger.error("cannot claim jobs (%s); will retry", exc)
            connections[self.db].close()
            self.next_poll = clock + DB_RETRY_DELAY
            self.wake = False
            return
        for job, idle_child in zip(jobs, idle, strict=False):
            self.children.dispatch(idle_child, job)
        self.claimed_total += len(jobs)
        self.registry.jobs_in_hand = len(self.children.busy)
        self.idle_and_empty = not jobs and not self.children.busy
        if len(jobs) < limit:
            self.wake = False
            self.next_poll = clock + self.options.poll_interval

    def drain(self, clock: float) -> None:
        """Shutting down: no new jobs; stop the running ones when time is up."""
        if self.shutdown_deadline is None:
            self.shutdown_deadline = clock + self.options.shutdown_timeout
            self.children.retire_idle()
        if self.stop_now or clock >= self.shutdown_deadline:
            for busy in self.children.busy:
                if self.stop_now or busy.stopping is None:
                    self.children.stop(busy, "shutdown", now=self.stop_now)


def run_worker(options: WorkerOptions) -> int:
    """Run a supervisor in this process; return its exit code."""
    return Supervisor(options).run()
