"""Stopping a worker: gracefully on the first signal, at once on the second.

SIGTERM or SIGINT: claim no more, let running jobs finish for up to
``--shutdown-timeout``, then stop them (their jobs go back to ready,
uncounted). A second signal stops them at once. Whatever the database does,
an alarm ends the worker ``hard_stop_after()`` seconds after the first
signal: a query that never returns cannot hold a shutdown.

The signal may have reached every process of the worker, not only the
supervisor (process managers often do that): the fork server and the
children ignore it (see ``process.py``), so the supervisor alone decides.
"""

from __future__ import annotations

import logging
import signal

from .children import Children
from .failures import Stop
from .options import WorkerOptions

logger = logging.getLogger("django_jobs.worker")

#: While a shutdown waits for running jobs: how often it says so.
NOTE_EVERY = 10.0


class HardStop(BaseException):
    """Raised by the alarm that bounds a shutdown, wherever the worker is."""


class Shutdown:
    def __init__(self, options: WorkerOptions, children: Children) -> None:
        self.timeout = options.shutdown_timeout
        self.kill_grace = options.config.KILL_GRACE
        self.children = children
        #: Claim no more; running jobs finish (set by the first signal).
        self.draining = False
        #: Stop running jobs now (set by a second signal, or by ``abort``).
        self.stop_now = False
        #: Stop signals received.
        self.signals = 0
        self.stopped_now = False
        self.reason = ""
        self.deadline: float | None = None
        self.next_note = 0.0

    def begin(self, signum: int) -> None:
        """A stop signal arrived (in its handler: set flags, nothing else)."""
        self.signals += 1
        if self.draining:
            self.stop_now = True
        else:
            signal.setitimer(signal.ITIMER_REAL, self.hard_stop_after())
        self.draining = True
        self.reason = signal.Signals(signum).name

    def abort(self, reason: str) -> None:
        """Stop everything now, without a signal (the fork server died)."""
        self.draining = self.stop_now = True
        self.reason = reason

    def hard_stop_after(self) -> float:
        """Seconds after a stop signal by which the worker has exited."""
        return self.timeout + self.kill_grace + 1.0

    def give_up_at(self, now: float) -> float:
        """When outcomes the database does not take are let go."""
        return (self.deadline or now) + self.kill_grace

    def wake_at(self) -> list[float]:
        if not self.draining or self.deadline is None:
            return []
        return (
            [self.deadline, self.next_note] if self.children.busy else [self.deadline]
        )

    def drain(self, clock: float) -> None:
        """Shutting down: no new jobs; stop the running ones when time is up."""
        running = len(self.children.busy)
        if self.deadline is None:
            self._start(clock, running)
        elif running and clock >= self.next_note and not self.stop_now:
            self.next_note = clock + NOTE_EVERY
            left = max(0.0, self.deadline - clock)
            logger.info(
                "still waiting for %d running job(s), %.0f s left", running, left
            )
        if self.stop_now and not self.stopped_now:
            self.stopped_now = True
            self._say_stopping_now(running)
        if self.stop_now or clock >= self.deadline:
            self._stop_running()

    def _say_stopping_now(self, running: int) -> None:
        if self.signals > 1:  # not after an abort: it said why itself
            logger.warning(
                "second %s: stopping %d running job(s) now; they go back to ready",
                self.reason,
                running,
            )

    def _start(self, clock: float, running: int) -> None:
        self.deadline = clock + self.timeout
        self.next_note = clock + NOTE_EVERY
        for each in self.children:
            self.children.tell_to_stop(each)
        if running:
            logger.info(
                "%s: waiting for %d running job(s), up to %g s; claiming no more "
                "(interrupt again to stop them now)",
                self.reason or "stopping",
                running,
                self.timeout,
            )
        else:
            logger.info("%s: no job running; stopping", self.reason or "stopping")

    def _stop_running(self) -> None:
        late = [busy for busy in self.children.busy if busy.stopping is None]
        if late and not self.stop_now:
            logger.warning(
                "shutdown timeout: stopping %d job(s); they go back to ready", len(late)
            )
        for busy in self.children.busy:
            if self.stop_now or busy.stopping is None:
                self.children.stop(busy, Stop.SHUTDOWN, now=self.stop_now)
