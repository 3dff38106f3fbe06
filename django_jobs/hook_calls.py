"""Calling hooks so that none can lose a job or change its outcome.

Every call is made here: an exception is logged with the hook's name and
swallowed; what a method returns is ignored (an ``around_run`` that returns
something other than a generator, or yields twice, is logged and left
out). A call made in the main thread (a worker's child, ``manage.py`` commands,
most web servers' sync workers) is stopped after ``HOOK_TIMEOUT`` seconds
by SIGALRM (a handler and timer already there are put back after), and the
hook is then skipped for ``BENCHED`` seconds, so that a hook that hangs
costs one timeout a minute, not one per job. The tracing hook of
django-jobs' own is not bounded: it does nothing that waits, and an alarm
set and put back costs an enqueue more than the hook itself (its errors
are still caught and logged). A call in another thread is
not bounded; the supervisor's ``on_outcome`` calls run in a thread of their
own (outcome_hooks.py), so its loop never waits for them.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from .hooks import Enqueue, Hook, Run, load

if TYPE_CHECKING:
    from .conf import JobsOptions

logger = logging.getLogger("django_jobs.hooks")

#: Seconds a hook that ran out of time is left out.
BENCHED = 60.0


class HookTimeout(Exception):
    """A hook's call took longer than HOOK_TIMEOUT (raised by the alarm)."""


class JobExited(Exception):
    """The job ended its process itself (``os._exit``) while hooks were open."""

    def __init__(self, code: int) -> None:
        super().__init__(f"the job called os._exit({code})")
        self.code = code


class Hooks:
    """A backend's hooks, each method's list kept apart (empty costs nothing)."""

    def __init__(self, hooks: list[tuple[str, Any]], timeout: float) -> None:
        self.timeout = timeout
        self.names = [name for name, _ in hooks]
        self.by_method: dict[str, list[tuple[str, Callable]]] = {}
        for method in ("before_enqueue", "after_enqueue", "around_run", "on_outcome"):
            self.by_method[method] = [
                (name, getattr(hook, method))
                for name, hook in hooks
                if _defines(hook, method)
            ]
        self.benched: dict[str, float] = {}
        #: How a call is bounded (``bounded``, or ``armed``: see ``within``).
        self.bound = bounded
        #: Hooks called without a bound: the tracing's own, which returns at
        #: once when there is nothing to trace (and an alarm costs an enqueue
        #: more than the hook does). Their errors are still caught and logged.
        self.unbounded = {name for name, hook in hooks if isinstance(hook, _trusted())}

    def within(self, seconds: float) -> Hooks:
        """These hooks with each call bounded by ``seconds`` at most, by an
        alarm this process keeps for them (``own_alarm``): the async lane's,
        where a call holds the event loop and many run a second. The same
        hooks, left out (``benched``) alike."""
        own_alarm()
        lane = copy.copy(self)
        lane.timeout = min(seconds, self.timeout)
        lane.bound = armed
        return lane

    @property
    def enqueue(self) -> bool:
        return bool(self.by_method["before_enqueue"] or self.by_method["after_enqueue"])

    @property
    def run(self) -> bool:
        return bool(self.by_method["around_run"])

    @property
    def outcome(self) -> bool:
        return bool(self.by_method["on_outcome"])

    def before_enqueue(self, enqueue: Enqueue) -> None:
        for name, method in self.by_method["before_enqueue"]:
            kept = dict(enqueue.trace_context)
            self.call(name, "before_enqueue", method, enqueue)
            if not _text_dict(enqueue.trace_context):
                logger.error(
                    "hook %s: before_enqueue left a trace context that is not "
                    "a dict of text (%r): put back as it was",
                    name, type(enqueue.trace_context).__name__,
                )  # fmt: skip
                enqueue.trace_context = kept

    def after_enqueue(self, enqueue: Enqueue) -> None:
        """In the reverse order: the first hook in is the last out."""
        for name, method in reversed(self.by_method["after_enqueue"]):
            self.call(name, "after_enqueue", method, enqueue)

    def on_outcome(self, outcome: Any) -> None:
        for name, method in self.by_method["on_outcome"]:
            self.call(name, "on_outcome", method, outcome)

    @contextlib.contextmanager
    def running(self, run: Run) -> Iterator[Run]:
        """Around one job's call: each hook's start in order, its end in
        reverse, given ``run.ended``; a job that calls ``os._exit`` meanwhile
        still ends them (``close_open_runs``)."""
        opened = []
        for name, method in self.by_method["around_run"]:
            generator = self.call(name, "around_run", method, run)
            if generator is None or generator is FAILED:
                continue
            if not hasattr(generator, "send"):
                logger.error(
                    "hook %s: around_run returned %r, not a generator that "
                    "yields once: left out",
                    name,
                    type(generator).__name__,
                )
                continue
            started = self.call(name, "around_run (its start)", next, generator, _GONE)
            if started is _GONE or started is FAILED:
                continue
            opened.append((name, generator))
        _open_runs.append((self, run, opened))
        try:
            yield run
        finally:
            with contextlib.suppress(ValueError):
                _open_runs.remove((self, run, opened))
            self.close(run, opened)

    def close(self, run: Run, opened: list) -> None:
        for name, generator in reversed(opened):
            done = self.call(
                name, "around_run (its end)", _finish, generator, run.ended
            )
            if done is False:
                logger.error("hook %s: around_run yielded more than once", name)
                with contextlib.suppress(BaseException):
                    generator.close()

    def call(self, name: str, what: str, method: Callable, *args: Any) -> Any:
        """``method(*args)``, bounded where it can be; FAILED if it failed."""
        if self.benched.get(name, 0.0) > time.monotonic():
            return FAILED
        try:
            if name in self.unbounded:
                return method(*args)
            with self.bound(self.timeout):
                return method(*args)
        except HookTimeout:
            self.benched[name] = time.monotonic() + BENCHED
            logger.error(
                "hook %s: %s took more than %g s (HOOK_TIMEOUT): stopped, and "
                "left out for %g s",
                name, what, self.timeout, BENCHED,
            )  # fmt: skip
        except (Exception, SystemExit):
            logger.exception("hook %s: %s raised", name, what)
        return FAILED


def _trusted() -> tuple[type, ...]:
    """The hook classes of django-jobs' own that need no bound (imported
    only when OpenTelemetry is: ``tracing`` needs it)."""
    tracing = sys.modules.get("django_jobs.tracing")
    return (tracing.Tracing,) if tracing is not None else ()


_GONE = object()  # a generator that did not yield at all
#: What ``Hooks.call`` returns for a call that failed or was skipped.
FAILED = object()
#: The runs whose hooks are open in this process (see close_open_runs).
_open_runs: list[tuple[Hooks, Run, list]] = []


def _text_dict(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(key, str) and isinstance(each, str) for key, each in value.items()
    )


def _finish(generator, ended: Any) -> bool:
    """Resume ``generator`` with ``ended``; False if it yielded again."""
    try:
        generator.send(ended)
    except StopIteration:
        return True
    return False


def close_open_runs(code: int) -> None:
    """The job called ``os._exit``: end the hooks of the runs still open,
    each given an ending that says so (the worker records a crash)."""
    from .attempts import Ended, Kind, describe

    while _open_runs:
        hooks, run, opened = _open_runs.pop()
        exc = JobExited(code)
        run.ended = Ended(Kind.CRASHED, error=describe(exc), exception=exc)
        hooks.close(run, opened)


def _defines(hook: Any, method: str) -> bool:
    """Whether ``hook`` has ``method`` of its own (not Hook's empty one)."""
    found = getattr(type(hook), method, None) or getattr(hook, method, None)
    return callable(found) and found is not getattr(Hook, method)


@contextlib.contextmanager
def bounded(seconds: float) -> Iterator[None]:
    """Raise HookTimeout in the block after ``seconds`` (in the main thread;
    elsewhere the block runs unbounded). A SIGALRM handler and timer the
    process had are put back after, the timer less the time spent (an alarm
    due meanwhile rings just after the block)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise HookTimeout

    previous = signal.signal(signal.SIGALRM, ring)
    started = time.monotonic()
    left, interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if left:
            left = max(left - (time.monotonic() - started), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def own_alarm() -> None:
    """Keep SIGALRM for the hooks' calls (a process that uses it for nothing
    else: a lane child), so that each call only sets the timer (``armed``):
    installing a handler per call costs more than a lane job's hooks do."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGALRM, _ring)


def _ring(signum, frame):
    raise HookTimeout


@contextlib.contextmanager
def armed(seconds: float) -> Iterator[None]:
    """``bounded``, where ``own_alarm`` installed the handler."""
    if signal.getsignal(signal.SIGALRM) is not _ring:
        with bounded(seconds):
            yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def guard_exit(*also: Callable[[], None]) -> None:
    """In a worker's child: before the process ends with ``os._exit`` (the
    job's own call, or the child's end), end the open runs' hooks and call
    each of ``also`` (the span export's flush). Once per process."""
    real = os._exit
    if getattr(real, "guarded", False):
        return

    def _exit(code: int) -> None:
        with contextlib.suppress(BaseException):
            close_open_runs(code)
        for then in also:
            with contextlib.suppress(BaseException):
                then()
        real(code)

    _exit.guarded = True
    os._exit = _exit


#: No hooks (a backend that is not a JobsBackend's).
NONE = Hooks([], 5.0)


def of_backend(alias: str) -> Hooks:
    """The hooks of the backend ``alias`` (resolved in the supervisor before
    the zygote was forked: nothing to import in a child); NONE for a backend
    that has none."""
    from .compat import task_backends

    hooks = getattr(task_backends[alias], "hooks", None)
    return hooks if isinstance(hooks, Hooks) else NONE


def configured(config: JobsOptions) -> list[tuple[str, Any]]:
    """The backend's hooks, each with its name, in the order they are called."""
    found = []
    if config.TRACING != "off" and opentelemetry_installed():
        from .tracing import Tracing

        found.append(("django_jobs.tracing.Tracing", Tracing(config.TRACING)))
    found += [(path, load(path)) for path in config.HOOKS]
    return found


def opentelemetry_installed() -> bool:
    """Whether opentelemetry-api is there (asked without importing it)."""
    try:
        return importlib.util.find_spec("opentelemetry.trace") is not None
    except (ImportError, ValueError):
        return False
