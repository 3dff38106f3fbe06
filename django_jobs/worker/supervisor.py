"""The supervisor: one loop that claims, hands out, records and watches.

It is single-threaded and never blocks on anything but ``select``: the
children's sockets, the zygote's reports, the LISTEN connection and a signal
wake-up pipe. Each turn of the loop records the outcomes that arrived, stops
children past their deadline, runs the duties that are due, keeps the pool of
children full and claims as many jobs as its children have room for.
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

from .. import schedules
from ..models import Job
from ..states import State
from .batching import Batching
from .children import Child, Children
from .claiming import DB_RETRY_DELAY, Claiming
from .database import configure_supervisor_connection
from .duties import (
    LimitsWatcher,
    Pruner,
    Registry,
    Rescuer,
    Scheduler,
    StrayJobs,
    apply_queue_limits,
    new_worker_id,
)
from .events import ChildEvents
from .leases import Leases
from .listener import Listener
from .options import WorkerOptions
from .outcomes import Recorder, log_job
from .output import OutputPipe

logger = logging.getLogger("django_jobs.worker")

CANCEL_CHECK_INTERVAL = 1.0


class HardStop(BaseException):
    """Raised by the alarm that bounds a shutdown, wherever the worker is."""


class Supervisor(ChildEvents, Claiming):
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.db = options.backend.db
        self.worker_id = new_worker_id()
        self.selector = selectors.DefaultSelector()
        self.children = Children(
            options.jobs_per_child,
            options.config.KILL_GRACE,
            self.selector,
            capture_output=options.config.CAPTURE_OUTPUT,
            output_tail=options.config.OUTPUT_TAIL,
        )
        self.recorder = Recorder(options)
        self.registry = Registry(options, self.worker_id)
        self.rescuer = Rescuer(options)
        self.scheduler = Scheduler(options)
        self.pruner = Pruner(options)
        self.limits = LimitsWatcher(options)
        self.duties = [
            self.registry,
            self.rescuer,
            self.scheduler,
            self.pruner,
            self.limits,
            StrayJobs(options),
        ]
        self.listener = Listener(self.db)
        self.batching = Batching(options.jobs_per_child)
        self.leases = Leases(self.db)
        self.draining = False
        self.stop_now = False
        self.stopped_now = False
        self.signal_name = ""
        self.shutdown_deadline: float | None = None
        self.wake = True  # there may be ready jobs: claim at the next chance
        self.next_poll = 0.0
        self.next_cancel_check = 0.0
        self.cancelling: set[int] = set()  # cancelled, waiting in a batch
        self.claimed_total = 0
        self.idle_and_empty = False  # burst: the last claim found nothing
        self.exit_code = 0
        self.cpu_at_start = 0.0
        self.started_at = time.monotonic()
        #: While the database is away: when to try recording outcomes again.
        self.db_retry_at = 0.0
        #: Jobs in hand whose claim was lost (rescued meanwhile): never run.
        self.lost: set[int] = set()

    # Life cycle

    def run(self) -> int:
        """Run until told to stop (or, in burst mode, until idle); the exit code."""
        self.prepare_children()
        self.install_signal_handlers()
        configure_supervisor_connection(self.db)
        try:
            self.run_until_stopped()
        except HardStop:
            logger.error(
                "worker %s: still stopping %.3g s after %s (the database does not "
                "answer); stopping now. Jobs it could not record stay reserved "
                "and will be rescued.",
                self.worker_id,
                self.hard_stop_after(),
                self.signal_name,
            )
            self.children.close()
            return 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return self.exit_code

    def run_until_stopped(self) -> None:
        try:
            self.registry.register()
            schedules.sync(self.options.backend)
            apply_queue_limits(self.options)
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
            self.cpu_at_start = cpu_time()
            self.started_at = time.monotonic()
            while not self.finished():
                self.turn()
        finally:
            self.close()

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
        signal.signal(signal.SIGALRM, self.on_hard_stop)

    def on_signal(self, signum: int, frame) -> None:
        if self.draining:
            self.stop_now = True
        else:
            # However the database behaves, the worker is gone by then.
            signal.setitimer(signal.ITIMER_REAL, self.hard_stop_after())
        self.draining = True
        self.signal_name = signal.Signals(signum).name

    def hard_stop_after(self) -> float:
        """Seconds after a stop signal by which the worker has exited."""
        return self.options.shutdown_timeout + self.options.config.KILL_GRACE + 1.0

    def on_hard_stop(self, signum: int, frame) -> None:
        raise HardStop

    def finished(self) -> bool:
        if self.children.busy:
            return False
        if self.recorder.pending:
            if not self.draining or time.monotonic() < self.give_up_at():
                return False
            logger.error(
                "stopping with %d outcome(s) not recorded (the database is "
                "unavailable); their jobs stay reserved and will be rescued",
                self.recorder.pending_count,
            )
            self.exit_code = 1
            return True
        if self.draining or self.stop_now:
            return True
        if self.options.max_jobs and self.claimed_total >= self.options.max_jobs:
            return True
        return self.options.burst and self.idle_and_empty

    def give_up_at(self) -> float:
        """Shutting down: when outcomes the database refuses to take are let go."""
        deadline = self.shutdown_deadline or time.monotonic()
        return deadline + self.options.config.KILL_GRACE

    def close(self) -> None:
        if time.monotonic() >= self.db_retry_at:
            self.recorder.flush()  # outcomes that arrived must not be lost
        for busy in self.children.busy:  # only after an error
            for job in busy.queue:
                self.recorder.release(job)
        self.children.close()
        self.listener.close()
        try:
            self.registry.deregister()
        except DatabaseError as exc:
            logger.error("could not remove worker %s's row: %s", self.worker_id, exc)
        signal.set_wakeup_fd(-1)
        logger.info(
            "worker %s stopped after %d job(s) in %.3f s; supervisor CPU %.3f s; "
            "peak RSS supervisor %d KiB, children %d KiB%s",
            self.worker_id,
            self.claimed_total,
            time.monotonic() - self.started_at,
            cpu_time() - self.cpu_at_start,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
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
        for key, events in self.selector.select(self.timeout()):
            handler = key.data
            if handler == "signal":
                self.on_wakeup()
            elif handler == "zygote":
                self.on_zygote()
            elif handler == "listen":
                self.on_notify()
            elif isinstance(handler, OutputPipe):
                self.children.read_output(handler)
            elif handler.pid in self.children.by_pid:  # not gone this turn
                if events & selectors.EVENT_WRITE:
                    self.children.flush(handler)
                if events & selectors.EVENT_READ:
                    self.on_child(handler)
        clock = time.monotonic()
        database = clock >= self.db_retry_at and self.recorder.flush()
        if not database and clock >= self.db_retry_at:
            self.db_retry_at = clock + DB_RETRY_DELAY
        # What needs no database goes on while it is away: deadlines are
        # kept, and a shutdown takes no longer than it should.
        for late in self.children.enforce_deadlines(clock):
            log_job(logging.WARNING, late.job, "ran past its deadline; stopping it")
        if database:
            self.leases.renew_waiting(self.children.waiting)
            self.run_duties(clock)
        if self.draining:
            self.drain(clock)
        elif database:
            self.replenish()
            self.claim(clock)
        self.registry.jobs_in_hand = self.children.jobs_in_hand()

    def timeout(self) -> float:
        clock = time.monotonic()
        wake_at = [duty.next_run for duty in self.duties]
        if self.children.busy:
            wake_at.append(self.next_cancel_check)
        if deadline := self.children.next_deadline():
            wake_at.append(deadline)
        if self.recorder.pending:
            wake_at.append(self.db_retry_at)
        if self.draining and self.shutdown_deadline is not None:
            wake_at.append(self.shutdown_deadline)
        elif self.may_claim() and self.rooms():
            wake_at.append(clock if self.wake else self.next_poll)
        return max(0.0, min(wake_at) - clock)

    def on_wakeup(self) -> None:
        """A signal arrived (its handler set the flags): empty the pipe."""
        with contextlib.suppress(BlockingIOError, InterruptedError):
            while self.wakeup_r.recv(4096):
                pass

    def on_zygote(self) -> None:
        messages = self.children.zygote.read()
        if messages is None:
            logger.error("the worker's fork server died; stopping")
            self.selector.unregister(self.children.zygote.sock)
            self.fatal()
            return
        for message in messages:
            if message["op"] == "forked":
                self.children.forked(message["id"], message["pid"])
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

    # Duties, claims, shutdown

    def run_duties(self, clock: float) -> None:
        for duty in self.duties:
            duty.maybe_run(clock)
        if self.registry.presumed_dead:  # it may have lost jobs: look now
            self.registry.presumed_dead = False
            self.next_cancel_check = 0.0
        if clock >= self.next_cancel_check and self.children.busy:
            self.next_cancel_check = clock + CANCEL_CHECK_INTERVAL
            self.check_claims()
        self.connect_listener()

    def check_claims(self) -> None:
        """Stop the jobs in hand that someone cancelled (see queue.cancel), and
        those whose claim was lost: taken back by another worker's rescuer
        while this one was stopped or cut off, they may be running there."""
        heads = {c.job.pk: c for c in self.children.busy}
        in_hand = {job.pk: job for busy in self.children.busy for job in busy.queue}
        try:
            rows = (
                Job.objects.using(self.db)
                .filter(pk__in=list(in_hand))
                .values_list("pk", "state", "claim_token", "cancel_requested_at")
            )
            rows = {pk: (state, token, cancel) for pk, state, token, cancel in rows}
        except DatabaseError as exc:
            logger.error("cannot look at the jobs in hand (%s)", exc)
            return
        for job_id, job in in_hand.items():
            state, token, cancel = rows.get(job_id, (None, None, None))
            if state != State.RESERVED or token != job.claim_token:
                self.lost_claim(job, heads.get(job_id))
            elif cancel is not None:
                self.cancel(job, heads.get(job_id))

    def lost_claim(self, job: Job, running: Child | None) -> None:
        if job.pk in self.lost:
            return
        self.lost.add(job.pk)
        if running is not None and running.started:
            log_job(logging.ERROR, job, "its claim was lost; stopping it now")
            self.children.stop(running, "lost", now=True)

    def cancel(self, job: Job, running: Child | None) -> None:
        if running is not None and running.started:
            if running.stopping is None:
                log_job(logging.WARNING, job, "cancelled; stopping it")
                self.children.stop(running, "cancel")
        else:
            self.cancelling.add(job.pk)  # stopped as soon as it starts

    def connect_listener(self) -> None:
        """(Re)open the LISTEN connection when there is none (PostgreSQL only)."""
        if (
            self.listener.available
            and self.listener.connection is None
            and self.listener.connect()
        ):
            self.selector.register(self.listener, selectors.EVENT_READ, "listen")

    def drain(self, clock: float) -> None:
        """Shutting down: no new jobs; stop the running ones when time is up."""
        if self.shutdown_deadline is None:
            logger.info(
                "%s: finishing %d running job(s) (up to %gs), claiming no more",
                self.signal_name or "stopping",
                len(self.children.busy),
                self.options.shutdown_timeout,
            )
            self.shutdown_deadline = clock + self.options.shutdown_timeout
            for each in self.children:
                self.children.tell_to_stop(each)
        if self.stop_now and not self.stopped_now:
            self.stopped_now = True
            logger.warning("second %s: stopping running jobs now", self.signal_name)
        if self.stop_now or clock >= self.shutdown_deadline:
            for busy in self.children.busy:
                if self.stop_now or busy.stopping is None:
                    self.children.stop(busy, "shutdown", now=self.stop_now)


def cpu_time() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_worker(options: WorkerOptions) -> int:
    """Run a supervisor in this process; return its exit code."""
    return Supervisor(options).run()
