"""Every message the worker's processes send one another, defined once.

Each message is a small frozen dataclass: its ``op`` names it on the wire
and its fields are the keys of the JSON object sent (one line: ``encode``).
A receiver gets back the same object (``decode``) or, for anything else, a
``ProtocolError``: a field missing or of the wrong type is refused where it
arrives, not found later by a ``KeyError`` deep in the worker, and a message
only another process may send is refused too. ``framing.py`` carries the
lines over the sockets.

Who sends what::

    supervisor -> child      Run, Retire, Warm, Reply, Lane, Cancel
    child -> supervisor      Started, Touch, Checkpoint, Progress, Outcome, Blocked
    supervisor -> zygote     Fork, Preload
    zygote -> supervisor     Forked, Exited, Preloaded
"""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from ..attempts import Ended, Kind

if typing.TYPE_CHECKING:
    from ..models import Job


class ProtocolError(ValueError):
    """A message that is not what a child or the supervisor sends."""


class Fields:
    """A record that travels as a JSON object: its fields, checked on arrival."""

    __slots__ = ()
    #: Each field's name and the types its value may have (None: any).
    _checks: ClassVar[tuple[tuple[str, tuple[type, ...] | None], ...]] = ()

    def wire(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in self._checks}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> typing.Self:
        values = {}
        for name, kinds in cls._checks:
            if name not in data:
                continue  # a default, or the missing-field error below
            value = data[name]
            if kinds is not None and not isinstance(value, kinds):
                raise ProtocolError(
                    f"{cls.__name__}.{name} cannot be {type(value).__name__}"
                )
            values[name] = value
        try:
            return cls(**values)
        except TypeError:
            missing = [name for name, _ in cls._checks if name not in data]
            raise ProtocolError(
                f"{cls.__name__} without {', '.join(missing)}"
            ) from None


class Message(Fields):
    __slots__ = ()
    op: ClassVar[str]

    def wire(self) -> dict[str, Any]:
        return {"op": self.op, **super().wire()}


#: Each message class by its ``op``, with the process that may send it.
BY_OP: dict[str, type[Message]] = {}
SENT_BY: dict[str, set[str]] = {"supervisor": set(), "child": set(), "zygote": set()}


def _runtime_types(hint: Any) -> tuple[type, ...] | None:
    """What ``isinstance`` checks for a field's annotation (None: anything)."""
    if hint is Any:
        return None
    if isinstance(hint, types.UnionType):
        found = [_runtime_types(arm) for arm in typing.get_args(hint)]
        if any(kinds is None for kinds in found):
            return None
        return tuple(kind for kinds in found for kind in kinds)
    if hint is float:
        return (int, float)
    if hint is type(None):
        return (type(None),)
    return (typing.get_origin(hint) or hint,)


def fields(cls: type[Fields]) -> type[Fields]:
    """Read a record's field types once, for ``Fields.from_wire``."""
    hints = typing.get_type_hints(cls)
    cls._checks = tuple(
        (name, _runtime_types(hints[name])) for name in cls.__dataclass_fields__
    )
    return cls


def message(op: str, sender: str):
    """Register a message class under ``op``, as sent by ``sender``."""

    def register(cls: type[Message]) -> type[Message]:
        cls.op = op
        BY_OP[op] = fields(cls)
        SENT_BY[sender].add(op)
        return cls

    return register


# Supervisor -> child


@fields
@dataclass(frozen=True, slots=True)
class JobSpec(Fields):
    """What a child needs to run a job and build its TaskResult."""

    id: int
    task_path: str
    queue: str
    reserved_until: str
    checkpoint: Any
    args: list
    kwargs: dict
    backend: str
    attempts: int
    worker_ids: list
    enqueued_at: str | None
    started_at: str | None
    last_attempted_at: str | None
    #: Its workflow: the jobs it enqueues join it (see scope.running_job).
    workflow: int | None = None
    #: RLIMIT_AS for its process while it runs (OPTIONS['MEMORY_RLIMIT']).
    rlimit_as: int | None = None
    #: What its hooks see of it (django_jobs.hooks.Run).
    max_attempts: int = 0
    priority: int = 0
    ttr: int = 0
    trace_context: dict | None = None

    @classmethod
    def of(cls, job: Job, rlimit_as: int | None = None) -> JobSpec:
        return cls(
            id=job.pk,
            task_path=job.task_path,
            queue=job.queue,
            reserved_until=job.reserved_until.isoformat(),
            checkpoint=job.checkpoint,
            args=job.args,
            kwargs=job.kwargs,
            backend=job.backend,
            attempts=job.attempts,
            worker_ids=job.worker_ids,
            enqueued_at=_iso(job.enqueued_at),
            started_at=_iso(job.started_at),
            last_attempted_at=_iso(job.last_attempted_at),
            workflow=job.workflow_id,
            rlimit_as=rlimit_as,
            max_attempts=job.max_attempts,
            priority=job.priority,
            ttr=job.ttr,
            trace_context=_dict_or_none(job.trace_context),
        )


@message("run", "supervisor")
@dataclass(frozen=True, slots=True)
class Run(Message):
    """Jobs to run in this order; the first ``pipes`` come with an output
    pipe each (file descriptors sent with the message, in job order)."""

    jobs: list[JobSpec]
    #: No more jobs will follow: exit after these.
    last: bool = False
    pipes: int = 0

    def wire(self) -> dict[str, Any]:
        jobs = [job.wire() for job in self.jobs]
        return {"op": self.op, "jobs": jobs, "last": self.last, "pipes": self.pipes}

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> Run:
        run = super(Run, cls).from_wire(data)
        if not all(isinstance(job, dict) for job in run.jobs):
            raise ProtocolError("Run.jobs holds something that is not a job")
        jobs = [JobSpec.from_wire(job) for job in run.jobs]
        return cls(jobs=jobs, last=run.last, pipes=run.pipes)


@message("retire", "supervisor")
@dataclass(frozen=True, slots=True)
class Retire(Message):
    """Exit after the current job (the worker shuts down)."""


@message("warm", "supervisor")
@dataclass(frozen=True, slots=True)
class Warm(Message):
    """Connect to these databases while idle: recent jobs used them."""

    databases: list[str]


@message("reply", "supervisor")
@dataclass(frozen=True, slots=True)
class Reply(Message):
    """The answer to a Touch or a Checkpoint: the new deadline, or why not."""

    ok: bool
    deadline: str | None = None
    #: The claim is gone: the job is no longer this worker's.
    lost: bool = False
    error: str | None = None

    @classmethod
    def moved(cls, deadline: datetime) -> Reply:
        return cls(ok=True, deadline=deadline.isoformat())

    @classmethod
    def claim_lost(cls) -> Reply:
        return cls(ok=False, lost=True)

    @classmethod
    def refused(cls, reason: str) -> Reply:
        return cls(ok=False, error=reason)


@message("lane", "supervisor")
@dataclass(frozen=True, slots=True)
class Lane(Message):
    """Become a lane child (lane.py); its board's descriptor comes with it."""

    concurrency: int
    slow_step: float  # a step holding the loop this long is reported


@message("cancel", "supervisor")
@dataclass(frozen=True, slots=True)
class Cancel(Message):
    """Cancel a lane job (CancelledError); the supervisor knows why."""

    id: int


# Child -> supervisor


@message("started", "child")
@dataclass(frozen=True, slots=True)
class Started(Message):
    """The job's task was found: it is about to be called."""

    id: int
    #: The W3C traceparent of its run's span, if a hook traces it: the
    #: supervisor's lines about the job carry its ids.
    trace: str | None = None


@message("touch", "child")
@dataclass(frozen=True, slots=True)
class Touch(Message):
    id: int
    #: The new lease from now; None: the job's ttr.
    seconds: float | None = None


@message("checkpoint", "child")
@dataclass(frozen=True, slots=True)
class Checkpoint(Message):
    id: int
    data: Any = None


@message("progress", "child")
@dataclass(frozen=True, slots=True)
class Progress(Message):
    id: int
    done: float | None = None
    total: float | None = None
    message: str = ""


@message("outcome", "child")
@dataclass(frozen=True, slots=True)
class Outcome(Message):
    """How a job ended: returned (``kind`` None) or failed, and how."""

    id: int
    #: A ``Kind``'s name; None: the job returned ``value``.
    kind: str | None = None
    value: Any = None
    error: dict[str, str] | None = None
    #: How long the task ran, as the child measured it.
    seconds: float = 0.0
    #: The databases the job used (children to come connect to them ahead).
    databases: list[str] = field(default_factory=list)
    #: CPU seconds the job used, and the process's peak resident bytes (see
    #: worker/usage.py).
    cpu: float | None = None
    max_rss: int | None = None

    @classmethod
    def of(
        cls, job_id: int, ended: Ended, databases: list[str], **used: Any
    ) -> Outcome:
        kind = None if ended.kind is None else ended.kind.name
        return cls(
            id=job_id,
            kind=kind,
            value=ended.value,
            error=ended.error,
            seconds=ended.seconds,
            databases=databases,
            **used,
        )

    @property
    def ok(self) -> bool:
        return self.kind is None

    @property
    def failure_kind(self) -> Kind:
        """How it failed (``Kind.from_child``: never a kind only the
        supervisor can tell, such as a timeout)."""
        return Kind.from_child(self.kind)


@message("blocked", "child")
@dataclass(frozen=True, slots=True)
class Blocked(Message):
    """One step of a lane job held the event loop ``seconds``."""

    id: int
    seconds: float


# Supervisor -> zygote, and back


@message("fork", "supervisor")
@dataclass(frozen=True, slots=True)
class Fork(Message):
    """Fork a child; its socket and pipes come with the request."""

    id: int


@message("preload", "supervisor")
@dataclass(frozen=True, slots=True)
class Preload(Message):
    """Import this task module once, for every child forked after."""

    module: str


@message("forked", "zygote")
@dataclass(frozen=True, slots=True)
class Forked(Message):
    id: int
    pid: int


@message("exited", "zygote")
@dataclass(frozen=True, slots=True)
class Exited(Message):
    pid: int
    #: As ``os.waitpid`` gives it.
    status: int
    #: Its CPU seconds and peak resident bytes (``wait4``), its life long.
    cpu: float | None = None
    max_rss: int | None = None


@message("preloaded", "zygote")
@dataclass(frozen=True, slots=True)
class Preloaded(Message):
    module: str
    ok: bool
    #: What the import left that a fork should not share, or why it failed.
    why: str = ""
    #: False: the module does not import at all (its jobs say why).
    importable: bool = True


def encode(message: Message) -> bytes:
    """One line of JSON (a SEQPACKET packet to or from the zygote)."""
    return json.dumps(message.wire(), separators=(",", ":")).encode() + b"\n"


def decode(line: bytes, sender: str) -> Message:
    """The message in ``line``, which ``sender`` may send; ProtocolError if it
    is anything else (never a crash, whatever the bytes)."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(f"not a message: {line[:80]!r} ({exc})") from None
    op = data.get("op") if isinstance(data, dict) else None
    if not isinstance(op, str) or op not in BY_OP:
        raise ProtocolError(f"not a message: {line[:80]!r}")
    if op not in SENT_BY[sender]:
        raise ProtocolError(f"a {sender} does not send {op!r}: {line[:80]!r}")
    return BY_OP[op].from_wire(data)


def _dict_or_none(value: Any) -> dict | None:
    return value if isinstance(value, dict) and value else None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
