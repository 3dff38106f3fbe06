"""A lane child: many ``async def`` jobs at once in one event loop.

A child that runs one job at a time spends a process on a job that mostly
waits (for HTTP replies, say). A lane child (``OPTIONS['ASYNC_QUEUES']``)
runs up to K of them at once in one asyncio event loop: child.py hands it
over here when the supervisor sends ``Lane`` (with the board, board.py).

Each job of a ``Run`` starts at once, as an asyncio task in a context of
its own (its job scope, its output: lane_output.py): resolved, ``Started``,
``attempts.arun``, its output flushed and closed, ``Outcome``. Every step of
its coroutine goes through ``Steps``, which writes the board (the supervisor
reads from it which job holds the loop, even when the child is stuck or
dead) and times the step: the job's CPU time is the sum of its steps', and a
step that held the loop ``slow_step`` seconds or more is reported
(``Blocked``), since every sibling waited for it.

``Cancel`` cancels one job's task (its outcome, an error with
``CancelledError``, is recorded as whatever the supervisor cancelled it
for). ``Retire``: no new jobs, exit when the running ones end; ``Run(last)``:
exit after them; the supervisor gone: cancel every job and exit.

Each job's ``around_run`` hooks (the tracing's ``run <task>`` span among
them) start and end in its own task, so its context is the job's alone: the
task's own spans nest under its run span, a sibling's never do. Its spans
leave in batches from its loop (span_export.LoopExport), never one export
per job.

Django's async ORM runs its sync code in ``sync_to_async``'s thread-sensitive
thread: the lane runs in a ``ThreadSensitiveContext`` of its own, so that is
one thread (one connection per database) for all of the child's jobs, made
in the child (never a thread of the process it was forked from), where the
connections are closed when the lane ends.
"""

from __future__ import annotations

import asyncio
import collections.abc
import contextlib
import contextvars
import time
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any, TextIO

from asgiref.sync import ThreadSensitiveContext, iscoroutinefunction, sync_to_async
from django.db import connections

from .. import attempts, hook_calls
from ..attempts import Ended, Kind
from ..compat import InvalidTask, Task, task_backends
from ..hooks import Run
from . import framing, lane_output, protocol, span_export
from .board import Board

if TYPE_CHECKING:
    from .child import _Channel
    from .protocol import JobSpec

#: Seconds the jobs get to end once cancelled because the supervisor is gone
#: (a job that ignores its cancellation must not keep the child alive).
GONE_GRACE = 5.0

#: The job whose context this is (set in each job's task; the tasks it
#: spawns inherit it).
_job: contextvars.ContextVar[Running | None] = contextvars.ContextVar(
    "django_jobs_lane_job", default=None
)


def main(channel: _Channel) -> None:
    """Run the lane on ``channel`` (which got ``Lane`` and the board) until
    retired, out of jobs, or the supervisor is gone."""
    board = Board.attach(channel.board_fd)
    channel.board_fd = None
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    spans = span_export.LoopExport(loop)
    spans.start()
    try:
        with lane_output.routed():
            loop.run_until_complete(Lane(channel, board).serve())
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        asyncio.set_event_loop(None)
        loop.close()
        board.close()
        spans.stop()  # every job's spans leave before the child does


class Running:
    """One job of the lane while it runs: what it is, and what it used."""

    __slots__ = ("cpu", "fd", "reported", "spec", "stream", "task")

    def __init__(self, spec: JobSpec, fd: int | None) -> None:
        self.spec = spec
        #: Its output pipe until its stream is opened (the stream owns it then).
        self.fd = fd
        self.stream: TextIO | None = None
        #: Thread CPU seconds of its steps so far.
        self.cpu = 0.0
        #: Its outcome was sent.
        self.reported = False
        self.task: asyncio.Task | None = None


class Lane:
    """The lane's loop: takes jobs and cancellations from the supervisor,
    runs each job as an asyncio task, and reports on them."""

    def __init__(self, channel: _Channel, board: Board) -> None:
        self.channel = channel
        self.board = board
        self.orders: protocol.Lane = channel.lane
        self.running: dict[int, Running] = {}
        #: The supervisor is gone (its socket closed): cancel all, exit.
        self.gone = False
        #: What the supervisor sent that is no message: cancel all, raise.
        self.broken: protocol.ProtocolError | None = None
        self.receiving = False  # a receive() is scheduled
        #: Each backend's hooks, bounded for the loop (``hooks_of``).
        self.hooks: dict[str, hook_calls.Hooks] = {}

    async def serve(self) -> None:
        """Run jobs until the lane is done (``until_done``), then close the
        connections the jobs' ORM calls opened, in the thread that opened
        them."""
        self.loop = asyncio.get_running_loop()
        self.loop.set_task_factory(self.task_factory)
        self.changed = asyncio.Event()
        fd = self.channel.sock.fileno()
        async with ThreadSensitiveContext():
            # Each job's context is a copy of this one: the lane's thread-
            # sensitive context, none of another job's variables.
            self.context = contextvars.copy_context()
            self.loop.add_reader(fd, self.receive)
            try:
                self.take()  # what came with Lane, or before it
                await self.until_done()
            finally:
                self.loop.remove_reader(fd)
                for _, pipe in self.channel.pending:  # never started
                    lane_output.close_fd(pipe)
                self.channel.pending.clear()
                await sync_to_async(connections.close_all)()
        if self.broken is not None:
            raise self.broken

    async def until_done(self) -> None:
        """Wait until retired or out of jobs, and none runs; or, the
        supervisor gone, cancel every job and give them a moment to end."""
        channel = self.channel
        while True:
            if self.gone or self.broken or channel.reader.closed:
                self.gone = True  # nothing more is sent
                for running in self.running.values():
                    running.task.cancel()
                tasks = [running.task for running in self.running.values()]
                if tasks:
                    await asyncio.wait(tasks, timeout=GONE_GRACE)
                return
            if not self.running and (
                channel.stop or (channel.last and not channel.pending)
            ):
                return
            self.changed.clear()
            await self.changed.wait()

    # The supervisor's messages

    def receive(self) -> None:
        """Take in what the supervisor sent (the socket is readable, or a
        touch's round trip left messages for the loop)."""
        self.receiving = False
        channel = self.channel
        try:
            for message in channel.reader.read():
                channel.accept(message)
                self.take()  # in order: a Run, then a Retire
        except protocol.ProtocolError as exc:
            self.broken = exc
        if channel.reader.closed:
            self.loop.remove_reader(channel.sock.fileno())
        self.take()
        self.changed.set()

    def take(self) -> None:
        """Act on the cancellations and start the jobs the channel holds."""
        channel = self.channel
        while channel.cancels:
            self.cancel(channel.cancels.popleft())
        while (
            channel.pending
            and not (channel.stop or self.gone or self.broken)
            and len(self.running) < self.orders.concurrency
        ):
            self.start(*channel.pending.popleft())

    def cancel(self, job_id: int) -> None:
        """Cancel a running job's task; a job not started yet (the child at
        its concurrency) is dropped with an outcome of its own, since the
        supervisor waits for one."""
        running = self.running.get(job_id)
        if running is not None:
            running.task.cancel()
            return
        for entry in self.channel.pending:  # given, not started yet
            spec, pipe = entry
            if spec.id == job_id:
                self.channel.pending.remove(entry)
                lane_output.close_fd(pipe)
                cancelled = attempts.raised(asyncio.CancelledError())
                self.send(protocol.Outcome.of(job_id, cancelled, [], cpu=0.0))
                return
        # Unknown: it ended already (its outcome crossed the Cancel).

    def task_factory(self, loop, coro, **options: Any) -> asyncio.Task:
        """Tasks a job spawns (``create_task``, ``gather``, a ``TaskGroup``)
        step through ``Steps`` as the job does: a blocking call in one is
        timed, and on the board, under the job's id."""
        running = _job.get()
        if running is not None and not isinstance(coro, Steps):
            coro = Steps(coro, running, self)
        return asyncio.Task(coro, loop=loop, **options)

    # A job

    def start(self, spec: JobSpec, pipe: int | None) -> None:
        """A task for the job, in a copy of the lane's context: its scope and
        output stay its own, and none of a sibling's leaks into it."""
        running = self.running[spec.id] = Running(spec, pipe)
        steps = Steps(self.job(running), running, self)
        running.task = self.loop.create_task(
            steps, name=f"job {spec.id}", context=self.context.copy()
        )
        running.task.add_done_callback(
            lambda task: self.ended(running, task), context=self.context
        )

    async def job(self, running: Running) -> None:
        """The job, from its output stream to its outcome."""
        if running.fd is not None:
            running.stream = lane_output.open_stream(running.fd)
            running.fd = None
        lane_output.current.set(running.stream)  # this job's context only
        _job.set(running)  # and the tasks it spawns
        try:
            ended = await self.attempt(running.spec)
        finally:
            # Before the outcome: the supervisor, reading the job's pipe when
            # the outcome arrives, then has every line of it.
            lane_output.close_stream(running.stream)
        self.report(running, ended)

    async def attempt(self, spec: JobSpec) -> Ended:
        """How the job ended: run, or refused (not a Task, not async)."""
        task = attempts.resolve(spec.task_path)
        if not isinstance(task, Task):
            return task
        if not iscoroutinefunction(task.func):
            return not_async(spec)
        with self.hooks_of(spec.backend).running(Run.of(task, spec)) as ran:
            self.send(protocol.Started(spec.id, ran.traceparent))
            try:
                ran.ended = await attempts.arun(
                    task,
                    spec.id,
                    spec.args,
                    spec.kwargs,
                    context=lambda: self.channel.job_context(task, spec),
                    workflow=spec.workflow,
                )
            except BaseException as exc:  # its coroutine closed: the lane ends
                ran.ended = attempts.raised(exc)
                raise
        return ran.ended

    def hooks_of(self, alias: str) -> hook_calls.Hooks:
        """The backend's hooks, each call (their start and end, in the job's
        own task and context) bounded by half ``ASYNC_BLOCK_LIMIT`` if that
        is sooner than ``HOOK_TIMEOUT``: a hook that hangs holds the loop,
        and is stopped before the watchdog retires the lane for it."""
        if alias not in self.hooks:
            hooks = hook_calls.of_backend(alias)
            config = getattr(task_backends[alias], "config", None)
            limit = getattr(config, "ASYNC_BLOCK_LIMIT", None)
            self.hooks[alias] = hooks.within(limit / 2 if limit else hooks.timeout)
        return self.hooks[alias]

    def report(self, running: Running, ended: Ended) -> None:
        running.reported = True
        # Going idle, the lane's spans leave before the supervisor hears of
        # its last outcome (and may kill an idle child); busy, they leave
        # in batches (span_export.LoopExport).
        if not self.channel.pending and all(r.reported for r in self.running.values()):
            span_export.flush()
        outcome = protocol.Outcome.of(running.spec.id, ended, [], cpu=running.cpu)
        self.send(outcome)

    def ended(self, running: Running, task: asyncio.Task) -> None:
        """A job's task is over. One that sent no outcome (cancelled before
        its first step, or a fault of the lane's) gets one here: the
        supervisor counts on an outcome for every job it gave."""
        if self.running.get(running.spec.id) is running:
            del self.running[running.spec.id]
        if not running.reported:  # cancelled before its first step, or a bug
            lane_output.close_fd(running.fd)
            lane_output.close_stream(running.stream)
            exc = asyncio.CancelledError() if task.cancelled() else task.exception()
            self.report(running, attempts.raised(exc or RuntimeError("no outcome")))
        self.take()  # room for a job that waited for it
        self.changed.set()

    def stepped(self, running: Running, seconds: float) -> None:
        """After each step of a job: report it if it held the loop long, and
        take in what a touch's round trip (a blocking read, in the step) left
        for the loop."""
        if seconds >= self.orders.slow_step:
            self.send(protocol.Blocked(running.spec.id, seconds))
        channel = self.channel
        left = (
            channel.cancels
            or channel.reader.closed
            or b"\n" in channel.reader.buffer
            or (channel.pending and len(self.running) < self.orders.concurrency)
        )
        if left and not self.receiving:
            self.receiving = True
            self.loop.call_soon(self.receive, context=self.context)

    def send(self, message: protocol.Message) -> None:
        """Every message of the lane to the supervisor goes out here. A
        blocking send: messages are small, the supervisor reads them at once."""
        if self.gone:
            return
        try:
            framing.send(self.channel.sock, message)
        except OSError:
            self.gone = True  # the supervisor is gone
            self.changed.set()


class Steps(collections.abc.Coroutine):
    """A job's coroutine as its asyncio task steps it.

    asyncio drives a task's coroutine by ``send`` and ``throw``; each call is
    one step, run while every other job waits. Around each: the board says
    which job holds the loop, and the step's wall and thread CPU time are
    measured (``Lane.stepped``).
    """

    __slots__ = ("_coro", "_lane", "_running")

    def __init__(
        self,
        coro: collections.abc.Coroutine[Any, Any, None],
        running: Running,
        lane: Lane,
    ) -> None:
        self._coro = coro
        self._running = running
        self._lane = lane

    def send(self, value: Any) -> Any:
        return self._step(self._coro.send, value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        if val is None and tb is None:  # asyncio's form: the exception alone
            return self._step(self._coro.throw, typ)
        return self._step(self._coro.throw, typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        # asyncio steps it and never awaits it; awaiting it is untimed.
        return self._coro.__await__()

    def _step(self, method: Callable[..., Any], *args: Any) -> Any:
        lane, running = self._lane, self._running
        lane.board.enter(running.spec.id)
        wall, cpu = time.monotonic(), time.thread_time()
        try:
            return method(*args)
        finally:
            cpu = time.thread_time() - cpu
            wall = time.monotonic() - wall
            lane.board.leave()
            running.cpu += cpu
            lane.stepped(running, wall)


def not_async(spec: JobSpec) -> Ended:
    """A sync task in the lane: never run (it would block every job beside
    it, and could not be cancelled at its ttr). Refused at ``@task`` for a
    lane queue, so only a row written by hand, or a task changed since its
    job was enqueued, gets here."""
    exc = InvalidTask(
        f"Task {spec.task_path!r} (queue {spec.queue!r}) is not an async def "
        "function: the async lane runs only async def tasks. Make it async, "
        "or route it to a queue outside OPTIONS['ASYNC_QUEUES']."
    )
    return Ended(Kind.NOT_A_TASK, error=attempts.error_of(exc), exception=exc)
