"""What the supervisor does when a child speaks, starts a job, or dies.

``ChildEvents`` is handed what it acts on: the children, the recorder of
outcomes, the leases, the claimer (an outcome frees a slot: claim again),
the claim watch (a job that starts may have been cancelled or lost) and
the shutdown (the fork server dying ends the worker).
"""

from __future__ import annotations

import logging
import math
import time

from ..models import Job
from . import protocol
from .children import Child, Children
from .claiming import Claimer
from .failures import Failure, Stop
from .leases import Leases, Refused
from .outcomes import Recorder, log_job
from .portions import Portions
from .process import describe_status
from .protocol import ProtocolError
from .shutdown import Shutdown
from .usage import since
from .watch import ClaimWatch

logger = logging.getLogger("django_jobs.worker")


class ChildEvents:
    def __init__(
        self,
        *,
        children: Children,
        recorder: Recorder,
        leases: Leases,
        portions: Portions,
        claimer: Claimer,
        watch: ClaimWatch,
        shutdown: Shutdown,
    ) -> None:
        self.children = children
        self.recorder = recorder
        self.leases = leases
        self.portions = portions
        self.claimer = claimer
        self.watch = watch
        self.shutdown = shutdown
        #: Set when the fork server died: the worker exits with it.
        self.failed = False

    # The fork server

    def on_zygote(self, mask: int = 0) -> None:
        messages = self.children.zygote.read()
        if messages is None:
            logger.error("the worker's fork server died; stopping")
            self.children.forget_zygote()
            self.fatal()
            return
        for message in messages:
            if isinstance(message, protocol.Forked):
                self.children.forked(message.id, message.pid)
            elif isinstance(message, protocol.Exited):
                self.on_exit(message.pid, message.status, message)
            elif isinstance(message, protocol.Preloaded):
                self.on_preloaded(message)

    def on_preloaded(self, answer: protocol.Preloaded) -> None:
        module, why, importable = answer.module, answer.why, answer.importable
        self.children.preloads.answered(module, answer.ok, importable)
        if answer.ok and not why:
            logger.debug("the fork server imported %s: children inherit it", module)
        elif answer.ok:
            logger.warning(
                "the fork server imported task module %s, and the import left "
                "what a fork should not share: %s",
                module,
                why,
            )
        elif importable:
            logger.warning(
                "task module %s is imported by each child, not once by the fork "
                "server: %s (keep database work, threads and sockets out of "
                "import time)",
                module,
                why,
            )

    def fatal(self) -> None:
        """The zygote is gone: its children die with it; count their attempts."""
        for gone in self.children:
            if gone.jobs:  # crashed, whatever it was being stopped for
                self.lost_child(gone, "the worker's fork server died", crashed=True)
            self.children.remove(gone)
        self.failed = True
        self.shutdown.abort("the fork server died")

    # Messages

    def on_child(self, sender: Child) -> None:
        for message in self.messages(sender):
            self.on_message(sender, message)
        if sender.reader.closed:
            self.children.stop_listening(sender)

    def messages(self, sender: Child) -> list[protocol.Message]:
        """What the child said; a child that says nonsense is stopped."""
        try:
            return sender.reader.read()
        except ProtocolError as exc:
            logger.error(
                "child %d broke the protocol (%s); stopping it", sender.pid, exc
            )
            problem = "it sent the worker something that is not a message"
            self.children.broke_protocol(sender, problem)
            return []

    def on_message(self, sender: Child, message: protocol.Message) -> None:
        job_id = getattr(message, "id", None)
        if sender.lane:
            slot = sender.slots.get(job_id)
            job = slot.job if slot else None
            ended = None if job else self.children.lanes.ended.get(job_id)
            if ended is not None and isinstance(message, protocol.Blocked):
                # The step that sent its outcome was the slow one.
                self.children.lanes.blocked(sender, ended, message.seconds)
                return
        else:
            job = sender.job
        if job is None or job_id != job.pk:
            logger.error("child %d sent an unexpected message: %r", sender.pid, message)
            return
        match message:
            case protocol.Started(trace=trace):
                job.run_traceparent = trace  # its log lines carry the run's ids
                self.on_started(sender, job)
            case protocol.Touch(seconds=seconds):
                self.on_touch(sender, job, seconds)
            case protocol.Checkpoint(data=data):
                self.reply(sender, job, self.leases.checkpoint(job, data))
            case protocol.Progress():
                self.recorder.progress(job, message)
            case protocol.Blocked(seconds=seconds):
                self.children.lanes.blocked(sender, job, seconds)
            case protocol.Outcome():
                self.on_outcome(sender, message)

    def on_started(self, sender: Child, job: Job) -> None:
        """The job started: its ttr counts from now (renewing its lease if late)."""
        if sender.lane:
            sender.slots[job.pk].started = True
            sender.slots[job.pk].started_at = time.monotonic()
        else:
            sender.head_started()
        if not self.watch.may_start(sender, job):
            return
        self.leases.renew_if_late(job)
        sender.follow_lease(job)
        if not sender.lane:  # a lane's jobs share a process: no limits
            self.children.resources.started(sender.pid, job)
        log_job(logging.DEBUG, job, "started in process %d", sender.pid)
        self.recorder.job_started(job)

    def on_touch(self, sender: Child, job: Job, seconds) -> None:
        if seconds is not None and not (
            isinstance(seconds, int | float) and math.isfinite(seconds) and seconds > 0
        ):
            refused = Refused(f"touch() takes seconds above 0, got {seconds!r}")
            self.reply(sender, job, refused)
            return
        self.reply(sender, job, self.leases.renew(job, seconds))

    def reply(self, sender: Child, job: Job, failure: Refused | None) -> None:
        """Answer a touch or a checkpoint: the new deadline, or why not."""
        if failure is None:
            sender.follow_lease(job)
            reply = protocol.Reply.moved(job.reserved_until)
        elif failure.lost:
            reply = protocol.Reply.claim_lost()
        else:
            reply = protocol.Reply.refused(failure.reason)
        self.children.send(sender, reply)

    def on_outcome(self, sender: Child, outcome: protocol.Outcome) -> None:
        """Queue an outcome for recording (at the end of this turn)."""
        stopping = None
        if sender.lane:  # the supervisor may have cancelled it, and knows why
            job, slot = self.children.lanes.finished(sender, outcome.id)
            stopping, watched = slot.stopping, None
        else:
            job = self.children.finish_head(sender)
            watched = self.children.resources.finished(sender.pid)
        self.claimer.wake_up()
        if self.watch.forget_lost(job):  # not ours to record any more
            self.children.outputs.collect(sender.pid, job)
            log_job(logging.WARNING, job, "stopped: its claim was lost")
            return
        self.keep_logs(sender, job)  # every line it printed comes first
        self.portions.observe(outcome.seconds)
        self.children.warm.used(outcome.databases)
        self.recorder.keep_usage(
            job, max_rss=outcome.max_rss, cpu=outcome.cpu, wall=outcome.seconds,
            watched=watched,
        )  # fmt: skip
        if (stopped := Failure.stopped(job, stopping)) is not None:
            self.recorder.failed(stopped)
        elif outcome.ok:
            self.recorder.succeeded(job, outcome.value, outcome.seconds)
        else:
            self.recorder.failed(Failure.of(job, outcome))

    def keep_logs(self, of: Child, job: Job) -> None:
        if tail := self.children.outputs.collect(of.pid, job):
            self.recorder.keep_logs(job, *tail)

    # Exits

    def on_exit(
        self, pid: int, status: int, exited: protocol.Exited | None = None
    ) -> None:
        gone = self.children.by_pid.get(pid)
        if gone is None:
            return
        if not gone.reader.closed:
            for message in self.messages(gone):  # what it said before dying
                self.on_message(gone, message)
        self.children.outputs.read_child(gone.pid)
        if gone.jobs:
            used = {  # what the process used, for its head's attempt
                "max_rss": exited and exited.max_rss, "cpu": exited and exited.cpu,
                "wall": since(gone.started_at if gone.started else None),
                "watched": self.children.resources.finished(pid),
            }  # fmt: skip
            if gone.lane:  # shared by its jobs: no one job's
                used = None
            self.lost_child(gone, describe_status(status), used=used)
            self.claimer.wake_up()  # a slot is free: no notification will say so
        self.children.remove(gone)

    def lost_child(
        self, gone: Child, how: str, *, crashed: bool = False, used: dict | None = None
    ) -> None:
        """A child died before finishing its jobs.

        Its head was its current attempt (even if it had not said so yet):
        it is recorded as timed out or crashed, or released if the worker
        stopped it to shut down (``crashed``: a crash, whatever it was
        stopped for). Jobs behind it never started: released. In a lane, the
        attempts are those ``LaneWatch.split`` names (the job it was killed
        for, or the one holding its loop when it died); the other jobs are
        released, uncounted, but for those it was cancelling.
        """
        if gone.lane:
            counted, rest = self.children.lanes.split(gone)
        else:
            head, *rest = self.children.take_jobs(gone)
            counted = [head]
        stopping = None if crashed else gone.stopping
        for head in counted:
            self.attempt_ended(gone, head, stopping, how, used)
        for job in rest:
            if self.watch.forget_lost(job):
                continue
            slot = gone.slots.get(job.pk)
            if slot and (stopped := Failure.stopped(job, slot.stopping)):
                self.recorder.failed(stopped)  # it was being cancelled
            elif gone.lane and gone.stopping is not Stop.SHUTDOWN:
                self.recorder.release(job, "its lane process ended for another job")
            else:
                self.recorder.release(job)

    def attempt_ended(
        self, gone: Child, head: Job, stopping: Stop | None, how: str, used: dict | None
    ) -> None:
        """The attempt of ``head`` ended with its child: record how."""
        if stopping is Stop.SHUTDOWN:  # not an attempt: no output kept
            if head.pk in self.leases.kept:  # its latest checkpoint goes first
                self.leases.flush()
            self.recorder.release(head)
        elif self.watch.forget_lost(head):  # not ours to record any more
            log_job(logging.WARNING, head, "stopped: its claim was lost")
        else:
            self.keep_logs(gone, head)
            self.recorder.keep_usage(head, **(used or {}))
            if (stopped := Failure.stopped(head, stopping)) is not None:
                failure = stopped
            elif stopping is Stop.LIMIT:
                failure = gone.over_limit.failure(head)
            else:
                how = f"{gone.problem}; {how}" if gone.problem else how
                failure = Failure.crashed(head, how)
            self.recorder.failed(failure)
