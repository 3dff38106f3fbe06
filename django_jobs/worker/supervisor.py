"""The supervisor: one loop that records, stops, looks after, refills and claims.

It is single-threaded and never blocks on anything but ``select``: the
children's sockets and output pipes, the zygote's reports, the LISTEN
connection and a signal wake-up pipe. Each of those is registered with the
selector together with the callback that handles it. Each turn of the loop
then walks the path of the worker's jobs: record the outcomes that arrived,
stop children past their deadline, run the duties that are due, keep the
pool of children full and claim as many jobs as it has room for.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import resource
import selectors
import signal
import time
from collections.abc import Iterator

from django.db import DatabaseError, connections
from django.utils.module_loading import autodiscover_modules

from .. import __version__, queue, schedules
from ..models import Job
from .children import Children
from .claiming import Claimer
from .duties import (
    History,
    Pruner,
    Rescuer,
    Scheduler,
    StrayJobs,
    apply_queue_limits,
)
from .events import ChildEvents
from .fleet import DueLook, Registry, new_worker_id
from .host import empty, signals_taken
from .leases import Leases
from .listener import Listener
from .options import WorkerOptions
from .outage import DatabaseHealth, first_line
from .outcomes import Recorder, log_job
from .portions import Portions
from .preload import module_of
from .scaling import Scaler
from .shutdown import HardStop, Shutdown
from .supervisor_connection import (
    check_database,
    connect_timeout,
    connection_pid,
    describe_database,
    supervisor_connection,
)
from .upkeep import Reindexer
from .usage import own_cpu as cpu_time
from .watch import ClaimWatch

logger = logging.getLogger("django_jobs.worker")


class Supervisor:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.db = options.db
        self.worker_id = new_worker_id()
        self.selector = selectors.DefaultSelector()
        self.health = DatabaseHealth(self.db)
        self.children = Children(
            options.child_budget,
            options.config.KILL_GRACE,
            self.selector,
            capture_output=options.config.CAPTURE_OUTPUT,
            output_tail=options.config.OUTPUT_TAIL,
            limits_from=options,
            lane=options.lane,
        )
        self.shutdown = Shutdown(options, self.children)
        self.scaler = Scaler(options, self.worker_id, self.children, self.shutdown)
        self.recorder = Recorder(options, self.health)
        self.leases = Leases(self.db, self.health)
        self.leases.on_moved = self.lease_moved
        self.portions = Portions(options.jobs_per_child)
        self.registry = Registry(
            options, self.worker_id, room=self.room, sizes=self.scaler.row
        )
        self.watch = ClaimWatch(self.db, self.children)
        self.leases.on_lost = lambda job: self.watch.look_now()
        self.listener = Listener(self.db, queue.channel(self.worker_id))
        self.duties = [
            self.registry,
            Rescuer(options, outcomes=self.recorder.hooks),
            Scheduler(options),
            Pruner(options, background=True),
            History(options),
            Reindexer(options),
            StrayJobs(options),
            self.watch,
            self.scaler,
        ]
        if self.listener.available:
            self.duties.append(DueLook(options))
        for duty in self.duties:
            duty.health = self.health
        self.claimer = Claimer(
            options,
            self.worker_id,
            children=self.children,
            portions=self.portions,
            leases=self.leases,
            health=self.health,
            shutdown=self.shutdown,
            registry=self.registry,
            listening=self.listener.listening,
            scaler=self.scaler,
            give_back=self.recorder.release,
        )
        self.events = ChildEvents(
            children=self.children,
            recorder=self.recorder,
            leases=self.leases,
            portions=self.portions,
            claimer=self.claimer,
            watch=self.watch,
            shutdown=self.shutdown,
        )
        self.children.on_readable = self.events.on_child
        self.exit_code = 0
        self.cpu_at_start = 0.0
        self.started_at = time.monotonic()
        self.hard_stopped = False

    # Life cycle

    def run(self) -> int:
        """Run until told to stop (or, in burst mode, until idle); the exit code.

        What the worker changes in this process (signal handlers, the alarm,
        the wake-up descriptor, its connection's settings) is given back when
        it returns: a test suite or a script may go on in it (see host.py).
        """
        with contextlib.ExitStack() as host:
            host.callback(self.selector.close)
            host.enter_context(connect_timeout(self.db))
            check_database(self.db)  # one line and no worker, rather than tracebacks
            self.registry.budget.check_server()  # likewise
            self.prepare_children()
            host.enter_context(self.signals_taken())
            host.enter_context(supervisor_connection(self.db))
            return self.run_to_the_end()

    def run_to_the_end(self) -> int:
        try:
            self.run_until_stopped()
        except HardStop:
            logger.error(
                "worker %s: still stopping %.3g s after %s (the database does not "
                "answer); stopping now. Jobs it could not record stay reserved "
                "and will be rescued.",
                self.worker_id,
                self.shutdown.hard_stop_after(),
                self.shutdown.reason,
            )
            self.children.close()
            return 1
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        return 1 if self.events.failed else self.exit_code

    def run_until_stopped(self) -> None:
        try:
            self.registry.register()
            schedules.sync(self.options.backend)
            apply_queue_limits(self.options)
            self.connect_listener()
            self.log_start()
            self.cpu_at_start = cpu_time()
            self.started_at = time.monotonic()
            while not self.finished():
                self.turn()
        finally:
            self.close()
            if self.recorder.hooks is not None:  # the last outcomes' hooks
                self.recorder.hooks.drain()

    def prepare_children(self) -> None:
        """Import the task modules, then fork the zygote before any connection.

        Every app's ``tasks`` module, and the modules of the scheduled tasks;
        modules of other tasks are imported by the zygote when their first
        job comes (see preload.py).
        """
        autodiscover_modules("tasks")
        for spec in self.options.config.SCHEDULES.values():
            try:
                importlib.import_module(module_of(spec["task"]))
            except Exception as exc:  # its schedule's check and jobs say why
                logger.debug("cannot import %s: %s", spec["task"], first_line(exc))
        connections.close_all()
        self.children.start_zygote()
        self.selector.register(
            self.children.zygote.sock, selectors.EVENT_READ, self.events.on_zygote
        )

    @contextlib.contextmanager
    def signals_taken(self) -> Iterator[None]:
        """Stop signals and the hard stop's alarm are the supervisor's while
        it runs; a signal wakes its select loop."""
        handlers = {
            signal.SIGTERM: self.on_signal,
            signal.SIGINT: self.on_signal,
            signal.SIGALRM: self.on_hard_stop,
        }
        with signals_taken(handlers) as self.wakeup:
            self.selector.register(self.wakeup, selectors.EVENT_READ, self.on_wakeup)
            yield

    def on_signal(self, signum: int, frame) -> None:
        self.shutdown.begin(signum)

    def on_hard_stop(self, signum: int, frame) -> None:
        self.hard_stopped = True  # close() must not wait for the database
        raise HardStop

    def finished(self) -> bool:
        if self.children.busy:
            return False
        if self.recorder.pending:
            if not self.shutdown.draining:
                return False
            if time.monotonic() < self.shutdown.give_up_at(time.monotonic()):
                return False
            logger.error(
                "stopping with %d outcome(s) not recorded (the database is "
                "unavailable); their jobs stay reserved and will be rescued",
                self.recorder.pending_count,
            )
            self.exit_code = 1
            return True
        return self.shutdown.draining or self.claimer.done()

    def close(self) -> None:
        if self.hard_stopped:  # out of time: the database is not waited for
            self.children.close()
            self.listener.close()
            return
        self.record_outcomes(time.monotonic())  # what arrived must not be lost
        # Jobs still in hand here mean the loop ended on an error: a job that
        # started counts an attempt (it may have done its work, or may be
        # what broke the worker); the others go back unstarted.
        for busy in self.children.busy:
            self.events.lost_child(busy, "the worker stopped on an error")
        self.children.close()
        self.record_outcomes(time.monotonic())
        self.claimer.release_in_doubt()  # a claim whose reply was lost, if any
        self.listener.close()
        try:
            self.registry.deregister()
        except DatabaseError as exc:
            logger.warning(
                "could not remove worker %s's row (%s); another worker's rescuer "
                "will, once it is silent",
                self.worker_id,
                first_line(exc),
            )
        self.log_stop()

    def log_start(self) -> None:
        logger.info(
            "django-jobs %s worker %s started: backend %r, database %r (%s), "
            "queues %s, concurrency %s, %d job(s) per child, pid %d%s%s",
            __version__,
            self.worker_id,
            self.options.backend.alias,
            self.db,
            describe_database(self.db),
            ", ".join(self.options.queues) or "all",
            self.scaler.describe(),
            self.options.child_budget,
            os.getpid(),
            connection_pid(self.db),
            "; it runs the fleet's duties"
            if self.registry.leads(time.monotonic())
            else "",
        )
        self.registry.announce = True

    def log_stop(self) -> None:
        # The fork server is reaped: RUSAGE_CHILDREN counts it and its children.
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        logger.info(
            "worker %s stopped after %d attempt(s) in %.3f s; supervisor CPU %.3f s; "
            "peak RSS supervisor %d KiB, children %d KiB; children CPU %.3f s, "
            "%d minor faults; %d claim(s)%s",
            self.worker_id,
            self.claimer.claimed_total,
            time.monotonic() - self.started_at,
            cpu_time() - self.cpu_at_start,
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            children.ru_maxrss,
            children.ru_utime + children.ru_stime,
            children.ru_minflt,
            self.claimer.claims,
            connection_pid(self.db),
        )

    # One turn of the loop

    def turn(self) -> None:
        for key, mask in self.selector.select(self.timeout()):
            key.data(mask)
        clock = time.monotonic()
        database = self.record_outcomes(clock)
        self.stop_the_late(clock)
        if database:
            self.run_due_duties(clock)
        if self.shutdown.draining:
            self.shutdown.drain(clock)
        elif database:
            if self.health.away:  # a claim is the next try
                self.claimer.wake_up()
            self.claimer.refill()
            self.claimer.claim(clock)
        self.registry.jobs_in_hand = self.children.jobs_in_hand()

    def record_outcomes(self, clock: float) -> bool:
        """Write what arrived; False while the database is away (what needs
        none goes on meanwhile: deadlines are kept, a shutdown is bounded).

        Touches and checkpoints kept while it was away come first: a job's
        latest checkpoint is written before its outcome.
        """
        if not self.health.due(clock):
            return False
        return self.leases.flush() and self.recorder.flush()

    def lease_moved(self, job: Job) -> None:
        """A renewal was written: the deadline of the job moves with it."""
        for busy in self.children.busy:
            mine = job.pk in busy.slots if busy.lane else busy.jobs[0] is job
            if mine and (busy.lane or busy.stopping is None):
                busy.follow_lease(job)

    def stop_the_late(self, clock: float) -> None:
        for late in self.children.enforce_deadlines(clock):
            log_job(logging.WARNING, late.job, "ran past its deadline; stopping it")

    def run_due_duties(self, clock: float) -> None:
        self.leases.renew_waiting(self.children.waiting)
        for duty in self.my_duties(clock):
            duty.maybe_run(clock)
        if self.registry.presumed_dead:  # it may have lost jobs: look now
            self.registry.presumed_dead = False
            self.watch.look_now()
        self.connect_listener()

    def my_duties(self, clock: float) -> list:
        """The duties this worker runs now: all of them while it holds the
        fleet's lease, else only its own (see fleet.py)."""
        if self.registry.leads(clock):
            return self.duties
        return [duty for duty in self.duties if not duty.fleet_wide]

    def room(self) -> int:
        """What the worker's row says it could take: nothing while stopping."""
        return 0 if self.shutdown.draining else self.claimer.room()

    def timeout(self) -> float:
        clock = time.monotonic()
        wake_at = [
            due for duty in self.my_duties(clock) if (due := duty.due_at()) is not None
        ]
        if deadline := self.children.next_deadline():
            wake_at.append(deadline)
        claim_at = self.claimer.wake_at(clock)
        if claim_at is not None:
            wake_at.append(claim_at)
        waiting = self.recorder.pending or self.leases.pending or claim_at is not None
        if self.health.away and waiting:  # the next try, when it is due
            wake_at.append(self.health.retry_at)
        wake_at += self.shutdown.wake_at()
        return max(0.0, min(wake_at) - clock)

    def on_wakeup(self, mask: int) -> None:
        """A signal arrived (its handler set the flags): empty the socket."""
        empty(self.wakeup)

    def on_notify(self, mask: int) -> None:
        queues = self.listener.queues()
        if queues is None:  # polling from now on: start at once
            self.selector.unregister(self.listener)
            self.claimer.wake_up()
            return
        self.claimer.on_notify(queues)

    def connect_listener(self) -> None:
        """(Re)open the LISTEN connection when there is none (PostgreSQL only)."""
        if (
            self.listener.available
            and self.listener.connection is None
            and self.listener.connect()
        ):
            self.selector.register(self.listener, selectors.EVENT_READ, self.on_notify)
            self.claimer.wake_up()  # what was enqueued meanwhile woke nobody


def run_worker(options: WorkerOptions) -> int:
    """Run a supervisor in this process; return its exit code."""
    return Supervisor(options).run()
