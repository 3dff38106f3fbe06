"""The signals a worker takes over in the process that runs it, and gives back.

``manage.py runworker`` usually has a process of its own, but test suites and
scripts run it in theirs (``call_command("runworker", "--burst")``), and go
on afterwards: that process must then be as the worker found it. While it
runs, the supervisor owns SIGTERM and SIGINT (a graceful stop), SIGALRM and
the real-time interval timer (the alarm that bounds a shutdown) and the
signal wake-up file descriptor (it wakes the select loop). ``signals_taken``
installs the supervisor's and, when the worker stops, puts back the
handlers, the wake-up descriptor and the timer that were there (a timer
that would have gone off meanwhile goes off at once). The database side
(a receiver and its connection's settings) is undone in supervisor_connection.py.
"""

from __future__ import annotations

import contextlib
import signal
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

Handler = Callable[[int, Any], Any]

#: The soonest a timer given back goes off (setitimer takes 0 as "disarm").
SOON = 0.001


@contextlib.contextmanager
def signals_taken(handlers: dict[int, Handler]) -> Iterator[socket.socket]:
    """Install ``handlers`` (with no timer armed) and a wake-up descriptor;
    yield the socket that a signal makes readable. On leaving, give back
    what was there before."""
    wakeup_r, wakeup_w = socket.socketpair()
    wakeup_r.setblocking(False)
    wakeup_w.setblocking(False)
    taken_at = time.monotonic()
    timer = signal.setitimer(signal.ITIMER_REAL, 0)  # its SIGALRM would be ours
    previous_fd = signal.set_wakeup_fd(wakeup_w.fileno())
    previous = {number: signal.signal(number, h) for number, h in handlers.items()}
    try:
        yield wakeup_r
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for signum, handler in previous.items():
            # None: a handler not installed from Python, which cannot be put
            # back; the default is the nearest.
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        signal.set_wakeup_fd(previous_fd)
        give_back_timer(timer, time.monotonic() - taken_at)
        wakeup_r.close()
        wakeup_w.close()


def empty(wakeup: socket.socket) -> None:
    """Read what signals wrote to the wake-up socket (they are handled)."""
    with contextlib.suppress(BlockingIOError, InterruptedError):
        while wakeup.recv(4096):
            pass


def give_back_timer(timer: tuple[float, float], elapsed: float) -> None:
    """Re-arm a timer that was disarmed ``elapsed`` seconds ago."""
    delay, interval = timer
    if delay > 0:
        signal.setitimer(signal.ITIMER_REAL, max(delay - elapsed, SOON), interval)
