"""Watching the claims of the jobs in hand: cancelled, or lost.

Every second while jobs are in hand, one query reads what became of their
claims. A job someone cancelled (``queue.cancel``) is stopped and buried by
this worker. A job whose claim was lost, taken back by another worker's
rescuer while this one was stopped or cut off from the database, is killed
at once: it may be running elsewhere already, and nothing it does here can
be recorded. A job that has not started yet is stopped when it starts.
"""

from __future__ import annotations

import logging

from ..models import Job
from ..states import State
from .children import Child, Children
from .duty import Duty
from .failures import Stop
from .outcomes import log_job

CHECK_INTERVAL = 1.0


class ClaimWatch(Duty):
    interval = CHECK_INTERVAL

    def __init__(self, db: str, children: Children) -> None:
        super().__init__()
        self.db = db
        self.children = children
        #: Cancelled while waiting in a child's portion: stopped when started.
        self.cancelling: set[int] = set()
        #: Claims lost (taken back meanwhile): never run, never recorded.
        self.lost: set[int] = set()

    def due_at(self) -> float | None:
        return self.next_run if self.children.busy else None

    def look_now(self) -> None:
        """Check at the next turn (this worker was presumed dead)."""
        self.next_run = 0.0

    def run_once(self) -> None:
        busy = self.children.busy
        if not busy:
            return
        holders = {job.pk: each for each in busy for job in each.jobs}
        in_hand = {job.pk: job for each in busy for job in each.jobs}
        rows = {
            pk: (state, token, cancel)
            for pk, state, token, cancel in Job.objects.using(self.db)
            .filter(pk__in=list(in_hand))
            .values_list("pk", "state", "claim_token", "cancel_requested_at")
        }
        for job_id, job in in_hand.items():
            state, token, cancel = rows.get(job_id, (None, None, None))
            if state != State.RESERVED or token != job.claim_token:
                self._lost(job, holders[job_id])
            elif cancel is not None:
                self._cancelled(job, holders[job_id])

    def may_start(self, child: Child, job: Job) -> bool:
        """``job`` reports that it started; False if it was stopped instead."""
        if job.pk in self.lost:
            log_job(logging.ERROR, job, "its claim was lost; stopping it now")
            self._stop(child, job, Stop.LOST)
            return False
        if job.pk in self.cancelling:
            self.cancelling.discard(job.pk)
            self._stop(child, job, Stop.CANCEL)
            return False
        return True

    def _started(self, child: Child, job: Job) -> bool:
        """Whether ``job`` runs in ``child`` (has started, not waiting its turn)."""
        if child.lane:
            slot = child.slots.get(job.pk)
            return slot is not None and slot.started
        return child.job is job and child.started

    def _stop(self, child: Child, job: Job, reason: Stop) -> None:
        """Stop a running job: its whole child, or in a lane only its
        coroutine (its siblings run on)."""
        if child.lane:
            if (slot := child.slots.get(job.pk)) is not None:
                self.children.lanes.cancel(child, slot, reason)
        elif reason is Stop.LOST:  # it may be running elsewhere already
            self.children.stop(child, reason, now=True)
        else:
            self.children.stop(child, reason)

    def forget_lost(self, job: Job) -> bool:
        """Whether ``job``'s claim was lost (and forget it: it is gone)."""
        if job.pk in self.lost:
            self.lost.discard(job.pk)
            return True
        return False

    def _lost(self, job: Job, holder: Child) -> None:
        if job.pk in self.lost:
            return
        self.lost.add(job.pk)
        if self._started(holder, job):
            log_job(logging.ERROR, job, "its claim was lost; stopping it now")
            self._stop(holder, job, Stop.LOST)

    def _cancelled(self, job: Job, holder: Child) -> None:
        if not self._started(holder, job):
            self.cancelling.add(job.pk)  # stopped as soon as it starts
            return
        stopping = holder.slots[job.pk].stopping if holder.lane else holder.stopping
        if stopping is None:
            log_job(logging.WARNING, job, "cancelled; stopping it")
            self._stop(holder, job, Stop.CANCEL)
