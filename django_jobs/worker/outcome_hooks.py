"""The supervisor's ``on_outcome`` hooks, in a thread of their own.

The supervisor's loop claims, watches deadlines and records outcomes; a hook
that is slow or hangs must not hold it (nor can the supervisor's alarm bound
it: SIGALRM is the shutdown's). So the loop only hands each outcome over
(``submit``: a deque append) and one daemon thread calls the hooks. A call
still running after HOOK_TIMEOUT is logged once, by the loop, naming the
hook; outcomes handed over meanwhile wait, up to ``BACKLOG`` of them, and
those past it are dropped with a count in the log. The thread starts with
the first outcome, long after the zygote was forked: the fork server never
holds it.

The worker has one: the Recorder's, which the supervisor hands to the
Rescuer too for the outcomes no child reports (``decided``: jobs taken back
from dead workers and expired reservations, jobs past their own or their
workflow's deadline), so the hooks are called from one thread, in the order
the outcomes came.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

from ..hook_calls import Hooks
from ..hooks import Outcome

logger = logging.getLogger("django_jobs.hooks")

#: Outcomes that may wait for a hook that is slow.
BACKLOG = 10_000


class OutcomeHooks:
    def __init__(self, hooks: Hooks) -> None:
        self.hooks = hooks
        self.waiting: deque[Outcome] = deque()
        self.wake = threading.Event()
        self.thread: threading.Thread | None = None
        #: The hook being called, and since when (monotonic).
        self.busy: tuple[str, float] | None = None
        self.reported: tuple[str, float] | None = None
        self.dropped = 0

    def decided(self, jobs: Iterable[dict[str, Any]], failure: str) -> None:
        """Hand over the outcomes a duty decided (``queue.decided``: each
        job as written, with ``then`` and ``error``); ``failure`` says why
        ("lost", "deadline", "workflow deadline")."""
        for job in jobs:
            self.submit(
                Outcome(
                    job_id=job["id"],
                    task_path=job["task_path"],
                    queue=job["queue"],
                    backend=job["backend"],
                    attempt=job["attempts"],
                    max_attempts=job["max_attempts"],
                    then=job["then"],
                    failure=failure,
                    error=job["error"],
                    trace_context=job["trace_context"] or None,
                )
            )

    def submit(self, outcome: Outcome) -> None:
        """Hand ``outcome`` to the thread; never waits."""
        if len(self.waiting) >= BACKLOG:
            self.dropped += 1
            if self.dropped in (1, 10, 100) or self.dropped % 1000 == 0:
                logger.error(
                    "on_outcome hooks are %d outcomes behind: %d dropped",
                    len(self.waiting), self.dropped,
                )  # fmt: skip
        else:
            self.waiting.append(outcome)
        self.look_for_hangs()
        if self.thread is None:
            self.thread = threading.Thread(
                target=self.serve, name="django_jobs on_outcome hooks", daemon=True
            )
            self.thread.start()
        self.wake.set()

    def look_for_hangs(self) -> None:
        busy = self.busy
        if busy is None or busy == self.reported:
            return
        running = time.monotonic() - busy[1]
        if running > self.hooks.timeout:
            self.reported = busy
            logger.error(
                "hook %s: on_outcome has run for %.0f s (HOOK_TIMEOUT is %g s); "
                "the outcomes after it wait",
                busy[0], running, self.hooks.timeout,
            )  # fmt: skip

    def serve(self) -> None:
        while True:
            self.wake.wait()
            self.wake.clear()
            while self.waiting:
                outcome = self.waiting.popleft()
                for name, method in self.hooks.by_method["on_outcome"]:
                    self.busy = (name, time.monotonic())
                    self.hooks.call(name, "on_outcome", method, outcome)
                    self.busy = None

    def drain(self, timeout: float = 2.0) -> None:
        """Give the thread a moment to call the hooks of the last outcomes
        (the worker is stopping)."""
        deadline = time.monotonic() + timeout
        while (self.waiting or self.busy) and time.monotonic() < deadline:
            time.sleep(0.01)
