"""What the supervisor does when a child speaks, starts a job, or dies."""

from __future__ import annotations

import logging

from ..models import Job
from .children import Child, lease_deadline
from .outcomes import log_job
from .process import describe_status
from .protocol import ProtocolError

logger = logging.getLogger("django_jobs.worker")


class ChildEvents:
    """Part of ``Supervisor``: the handlers of its children's messages and exits."""

    def on_child(self, sender: Child) -> None:
        for message in self.messages(sender):
            self.on_message(sender, message)
        if sender.reader.closed:
            self.children.stop_listening(sender)

    def messages(self, sender: Child) -> list[dict]:
        """What the child said; a child that says nonsense is stopped."""
        try:
            return sender.reader.read()
        except ProtocolError as exc:
            logger.error(
                "child %d broke the protocol (%s); stopping it", sender.pid, exc
            )
            sender.reader.closed = True
            sender.problem = "it sent the worker something that is not a message"
            self.children.stop(sender, "protocol", now=True)
            return []

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
        elif op == "checkpoint":
            self.on_checkpoint(sender, message.get("data"))
        elif op == "progress":
            self.recorder.progress(job, message)
        elif op == "outcome":
            self.on_outcome(sender, message)

    def on_started(self, sender: Child, job: Job) -> None:
        """The head started: its ttr counts from now (renewing its lease if late)."""
        sender.started = True
        if job.pk in self.lost:
            log_job(logging.ERROR, job, "its claim was lost; stopping it now")
            self.children.stop(sender, "lost", now=True)
            return
        if job.pk in self.cancelling:
            self.cancelling.discard(job.pk)
            self.children.stop(sender, "cancel")
            return
        self.leases.renew_if_late(job)
        sender.deadline = lease_deadline(job)
        self.recorder.job_started(job)

    def on_touch(self, sender: Child, seconds: float | None) -> None:
        job = sender.job
        seconds = float(seconds) if seconds else float(job.ttr)
        self.reply_with_deadline(sender, self.leases.renew(job, seconds))

    def on_checkpoint(self, sender: Child, data) -> None:
        job = sender.job
        saved = self.leases.checkpoint(job, data)
        self.reply_with_deadline(sender, saved)

    def reply_with_deadline(self, sender: Child, ok: bool) -> None:
        if ok:
            sender.deadline = lease_deadline(sender.job)
            deadline = sender.job.reserved_until.isoformat()
            reply = {"op": "reply", "ok": True, "deadline": deadline}
        else:
            reply = {"op": "reply", "ok": False}
        self.children.send(sender, reply)

    def on_outcome(self, sender: Child, outcome: dict) -> None:
        """Queue an outcome for recording (at the end of this turn)."""
        job = self.children.finish_head(sender)
        self.keep_logs(sender, job)  # every line it printed comes first
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

    def keep_logs(self, of: Child, job: Job) -> None:
        if tail := self.children.collect_output(of, job):
            self.recorder.keep_logs(job, *tail)

    def on_exit(self, pid: int, status: int) -> None:
        gone = self.children.by_pid.get(pid)
        if gone is None:
            return
        if not gone.reader.closed:
            for message in self.messages(gone):  # what it said before dying
                self.on_message(gone, message)
        if gone.output is not None and not gone.output.closed:
            self.children.read_output(gone.output)
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
        if gone.stopping == "shutdown":  # not an attempt: no output kept
            self.recorder.release(head)
        elif head.pk in self.lost:  # not ours to record any more
            self.lost.discard(head.pk)
            log_job(logging.WARNING, head, "stopped: its claim was lost")
        else:
            self.keep_logs(gone, head)
            if gone.stopping == "timeout":
                self.recorder.timed_out(head, head.ttr)
            elif gone.stopping == "cancel":
                self.recorder.cancelled(head)
            else:
                self.recorder.crashed(
                    head, f"{gone.problem}; {how}" if gone.problem else how
                )
        for job in rest:
            if job.pk in self.lost:
                self.lost.discard(job.pk)
            else:
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
