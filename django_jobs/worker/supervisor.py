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

from .. import queue
from ..models import Job
from .batching import Batching
from .children import Child, Children
from .database import configure_supervisor_connection
from .duties import Registry, Rescuer, new_worker_id
from .leases import Leases
from .listener import Listener
from .options import WorkerOptions
from .outcomes import Recorder, log_job
from .process import describe_status

logger = logging.getLogger("django_jobs.worker")

DB_RETRY_DELAY = 1.0
CANCEL_CHECK_INTERVAL = 1.0


class Supervisor:
    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.db = options.backend.db
        self.worker_id = new_worker_id()
        self.selector = selectors.DefaultSelector()
        self.children = Children(
            options.jobs_per_child, options.config.KILL_GRACE, self.selector
        )
        self.recorder = Recorder(options)
        self.registry = Registry(options, self.worker_id)
        self.rescuer = Rescuer(options)
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

    # Life cycle

    def run(self) -> int:
        """Run until told to stop (or, in burst mode, until idle); the exit code."""
        self.prepare_children()
        self.install_signal_handlers()
        configure_supervisor_connection(self.db)
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
            self.cpu_at_start = cpu_time()
            self.started_at = time.monotonic()
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
            elif handler.pid in self.children.by_pid:  # not gone this turn
                if events & selectors.EVENT_WRITE:
                    self.children.flush(handler)
                if events & selectors.EVENT_READ:
                    self.on_child(handler)
        if not self.recorder.flush():
            time.sleep(DB_RETRY_DELAY)
            return
        clock = time.monotonic()
        for late in self.children.enforce_deadlines(clock):
            log_job(logging.WARNING, late.job, "ran past its deadline; stopping it")
        self.leases.renew_waiting([job for _, job in self.children.waiting()])
        self.run_duties(clock)
        if self.draining:
            self.drain(clock)
        else:
            self.replenish()
            self.claim(clock)
        self.registry.jobs_in_hand = self.children.jobs_in_hand()

    def timeout(self) -> float:
        clock = time.monotonic()
        wake_at = [self.registry.next_run, self.rescuer.next_run]
        if self.children.busy:
            wake_at.append(self.next_cancel_check)
        if deadline := self.children.next_deadline():
            wake_at.append(deadline)
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

    def on_child(self, sender: Child) -> None:
        for message in sender.reader.read():
            self.on_message(sender, message)
        if sender.reader.closed:
            self.children.stop_listening(sender)

    def on_message(self, sender: Child, message: dict) -> None:
        job = sender.job
        if job is None or message.get("id") != job.pk:
            logger.error("child %d sent an unexpected message: %r", sender.pid, message)
            return
        op = message["op"]
        if op == "started":
            self.on_started(sender, job)
        elif op == "touch":
            self.on_touch(sender, message.get("seconds"))
        elif op == "outcome":
            self.on_outcome(sender, message)

    def on_started(self, sender: Child, job: Job) -> None:
        """The head started: its ttr counts from now (renewing its lease if late)."""
        sender.started = True
        if job.pk in self.cancelling:
            self.cancelling.discard(job.pk)
            self.children.stop(sender, "cancel")
            return
        self.leases.renew_if_late(job)
        sender.deadline = time.monotonic() + self.leases.left(job)
        self.recorder.job_started(job)

    def on_touch(self, sender: Child, seconds: float | None) -> None:
        job = sender.job
        seconds = float(seconds) if seconds else float(job.ttr)
        if self.leases.renew(job, seconds):
            sender.deadline = time.monotonic() + seconds
            reply = {
                "op": "touched",
                "ok": True,
                "deadline": job.reserved_until.isoformat(),
            }
        else:
            reply = {"op": "touched", "ok": False}
        self.children.send(sender, reply)

    def on_outcome(self, sender: Child, outcome: dict) -> None:
        """Queue an outcome for recording (at the end of this turn)."""
        job = self.children.finish_head(sender)
        elapsed = outcome.get("seconds", 0.0)
        self.batching.observe(elapsed)
        if outcome.get("ok"):
            self.recorder.succeeded(job, outcome.get("value"), elapsed)
        elif outcome.get("unrunnable"):
            error = outcome["error"]
            self.recorder.unrunnable(
                job, error["exception_class_path"], error["traceback"]
            )
        else:
            error = outcome["error"]
            self.recorder.failed(job, error["exception_class_path"], error["traceback"])
        self.wake = True

    def on_exit(self, pid: int, status: int) -> None:
        gone = self.children.by_pid.get(pid)
        if gone is None:
            return
        if not gone.reader.closed:
            for message in gone.reader.read():  # what it said before dying
                self.on_message(gone, message)
        if gone.queue:
            self.lost_child(gone, describe_status(status))
        self.children.remove(gone)

    def lost_child(self, gone: Child, how: str) -> None:
        """A child died before finishing its jobs.

        Its head was its current attempt (even if it had not said so yet):
        it is recorded as timed out or crashed, or released if the worker
        stopped it to shut down. Jobs behind it never started: released.
        """
        head, *rest = gone.queue
        gone.queue.clear()
        if gone.stopping == "shutdown":
            self.recorder.release(head)
        elif gone.stopping == "timeout":
            self.recorder.timed_out(head, head.ttr)
        elif gone.stopping == "cancel":
            self.recorder.cancelled(head)
        else:
            self.recorder.crashed(head, how)
        for job in rest:
            self.recorder.release(job)

    def fatal(self) -> None:
        """The zygote is gone: its children die with it; count their attempts."""
        for gone in self.children:
            if gone.queue:
                gone.stopping = None
                self.lost_child(gone, "the worker's fork server died")
            self.children.remove(gone)
        self.exit_code = 1
        self.draining = self.stop_now = True

    # Duties, claims, shutdown

    def run_duties(self, clock: float) -> None:
        self.registry.maybe_run(clock)
        self.rescuer.maybe_run(clock)
        if clock >= self.next_cancel_check and self.children.busy:
            self.next_cancel_check = clock + CANCEL_CHECK_INTERVAL
            self.stop_cancelled()
        self.connect_listener()

    def stop_cancelled(self) -> None:
        """Stop the jobs in hand that someone cancelled (see queue.cancel)."""
        heads = {c.job.pk: c for c in self.children.busy}
        in_hand = [job.pk for _, job in self.children.waiting()] + list(heads)
        try:
            wanted = set(
                Job.objects.using(self.db)
                .filter(pk__in=in_hand, cancel_requested_at__isnull=False)
                .values_list("pk", flat=True)
            )
        except DatabaseError as exc:
            logger.error("cannot look for cancelled jobs (%s)", exc)
            return
        for job_id in wanted:
            running = heads.get(job_id)
            if running is not None and running.stopping is None:
                log_job(logging.WARNING, running.job, "cancelled; stopping it")
                self.children.stop(running, "cancel")
            elif running is None:
                self.cancelling.add(job_id)  # stopped as soon as it starts

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

    def may_claim(self) -> bool:
        if self.draining:
            return False
        return not self.options.max_jobs or self.claimed_total < self.options.max_jobs

    def rooms(self) -> dict[Child, int]:
        """How many jobs each child may be given now."""
        batch = self.batching.per_child()
        # A slot is a job running: spare children wait for a free slot.
        free_slots = self.options.concurrency - len(self.children.busy)
        rooms = {}
        for candidate in self.children:
            room = self.children.room(candidate, batch)
            if not room:
                continue
            if candidate.queue:
                # Top up a busy child only by half a batch or more, so that
                # one claim serves several jobs.
                if room * 2 >= batch:
                    rooms[candidate] = room
            elif free_slots > 0:
                rooms[candidate] = room
                free_slots -= 1
        return rooms

    def claim(self, clock: float) -> None:
        """Claim as many jobs as the children have room for; hand them out."""
        rooms = self.rooms()
        limit = sum(rooms.values())
        if self.options.max_jobs:
            limit = min(limit, self.options.max_jobs - self.claimed_total)
        if limit < 1 or not (self.wake or clock >= self.next_poll):
            return
        try:
            jobs = queue.claim(
                worker_id=self.worker_id,
                queues=self.options.queues or None,
                limit=limit,
                backend=self.options.backend.alias,
                using=self.db,
                prepare=True,
            )
        except DatabaseError as exc:
            logger.error("cannot claim jobs (%s); will retry", exc)
            connections[self.db].close()
            self.next_poll = clock + DB_RETRY_DELAY
            self.wake = False
            return
        self.claimed_total += len(jobs)
        if len(jobs) < limit:
            self.wake = False
            self.next_poll = clock + self.options.poll_interval
        self.idle_and_empty = not jobs and not self.children.busy
        # Idle children first, so that every job starts as soon as possible.
        for taker in sorted(rooms, key=lambda c: len(c.queue)):
            given, jobs = jobs[: rooms[taker]], jobs[rooms[taker] :]
            if given:
                self.children.dispatch(taker, given)

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
