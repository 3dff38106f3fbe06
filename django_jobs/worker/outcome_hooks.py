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

The worker has one of these per backend's hooks (``of``): the Recorder's,
which the Rescuer uses too for the jobs that expired unstarted (``expired``),
so the hooks are called from one thread, in the order the outcomes came.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections import deque
from typing import TYPE_CHECKING

from ..hook_calls import Hooks
from ..hooks import Outcome

if TYPE_CHECKING:
    from ..queue.duties import Expired

logger = logging.getLogger("django_jobs.hooks")

#: Outcomes that may wait for a hook that is slow.
BACKLOG = 10_000
#: Each backend's hooks' OutcomeHooks in this process (see ``OutcomeHooks.of``).
_of: weakref.WeakKeyDictionary[Hooks, OutcomeHooks] = weakref.WeakKeyDictionary()


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
        _of[hooks] = self

    @classmethod
    def of(cls, hooks: Hooks) -> OutcomeHooks | None:
        """The worker's OutcomeHooks for ``hooks`` (made once); None if no
        hook has an ``on_outcome``."""
        if not hooks.outcome:
            return None
        found = _of.get(hooks)
        return found if found is not None else cls(hooks)

    def expired(self, expired: Expired) -> None:
        """Hand over the jobs that passed their deadline unstarted
        (``queue.expire_jobs``): then "expired", kept buried or deleted."""
        for job in expired.jobs:
            self.submit(
                Outcome(
                    job_id=job["id"],
                    task_path=job["task_path"],
                    queue=job["queue"],
                    backend=job["backend"],
                    attempt=job["attempts"],
                    max_attempts=job["max_attempts"],
                    then="expired",
                    error=expired.error,
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
