"""The kinds of job in a soak: how often each is enqueued and how it must end.

Kept free of Django so that the driver and the report can read it anywhere.
A kind is a task of ``tests.soak.tasks`` of the same name, but one: a
"workflow" is a small graph of jobs (the tasks of ``tests.soak.flows``),
each of which must end as its graph's plan says (see ``graphs.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Attempts for jobs that must end done: chaos can cost a job a few attempts
#: (killed, rescued), so a done-kind ending buried means something is wrong.
PATIENT = 20
#: Attempts for jobs that must end buried: few, to keep the soak short.
FAILING = 3
#: Seconds of ttr for jobs that run past it (the rest use DEFAULT_TTR).
OVERRUN_TTR = 1
#: The ttr of the jobs that touch and checkpoint through database blips, and
#: how long they run: often longer than their ttr, so touches must count.
TOUCH_TTR = 4
TOUCH_SECONDS = (2.0, 5.0)
#: The queue of the keyed kind, its limit per key, and how many keys share it.
KEYED_QUEUE = "keyed"
KEY_CONCURRENCY = 1
KEYS = 4
#: The queue of the async lane's kind, and how many of its jobs one lane
#: child runs at once (its own worker serves it: workers.py).
LANE_QUEUE = "lane"
LANE_CONCURRENCY = 20
#: The memory limit of the leaking kind, and where it stops allocating (so a
#: leak that no watch stops, its supervisor frozen, cannot exhaust the host).
LEAK_LIMIT = 150_000_000
LEAK_CAP = 400_000_000
#: The "must end" of the workflow kind: done or buried, as its graph plans.
AS_PLANNED = "as planned"
#: Pages a fanning-out crawl of a graph enqueues, and how often a graph has
#: a crawl that always fails, or a report that runs anyway.
GRAPH_PAGES = (2, 5)
GRAPH_BROKEN = 0.3
GRAPH_REPORT = 0.5


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    #: The state every job of this kind must end in: "done" or "buried".
    ends: str
    #: Relative share of the jobs.
    weight: float
    #: Whether a run that finishes its work writes a "done" row (only the
    #: kinds that then return a value do: a job that raises by design
    #: never counts as a completion).
    completes: bool
    summary: str


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind("noop", "done", 30, True, "returns at once"),
        Kind("nap", "done", 25, True, "sleeps 0.02-0.3 s, then returns"),
        Kind("flaky", "done", 10, True, "raises on attempt 1, returns after"),
        Kind("fail", "buried", 5, False, "always raises"),
        Kind("crash", "buried", 5, False, "os._exit(3)"),
        Kind("overrun", "buried", 1.5, False, f"sleeps past its ttr of {OVERRUN_TTR}s"),
        Kind("odd_return", "done", 8, True, "returns NUL, surrogates, fake marks"),
        Kind("odd_raise", "buried", 7, False, "raises with those strings"),
        Kind("odd_output", "done", 8.5, True, "prints them; odd progress, checkpoint"),
        Kind("touch", "done", 1, True, "touches or checkpoints every 0.2 s for 2-5 s"),
        Kind(
            "keyed",
            "done",
            3,
            True,
            f"sleeps 0.02-0.3 s on queue {KEYED_QUEUE!r}, {KEY_CONCURRENCY} running "
            f"per key of {KEYS}",
        ),
        Kind("leak", "buried", 1, False, "allocates past its max_memory; killed"),
        Kind(
            "lane",
            "done",
            5,
            True,
            f"awaits 0.5-2 s in the async lane, {LANE_CONCURRENCY} at once per child",
        ),
        # One plan entry is a whole graph of 7 to 11 jobs (see flows.py).
        Kind(
            "workflow",
            AS_PLANNED,
            1.7,
            True,
            "3 crawls (one fans out to pages) -> match -> analyze; some with a "
            "crawl that fails, some with a report that runs anyway",
        ),
    )
}
WORKFLOW = KINDS["workflow"]

#: Strings a job may hand back that are awkward to store or to parse:
#: NUL (PostgreSQL text cannot hold it), lone surrogates (not UTF-8), and
#: text that looks like the worker's own end-of-job mark or protocol.
ODD_STRINGS = (
    "nul \x00 inside",
    "\ud800 lone high surrogate",
    "lone low surrogate \udfff",
    "\x00django-jobs:end not-a-number",
    "\x00django-jobs:end 12abc\nsecond line",
    '{"op":"outcome","id":1,"ok":true,"value":"forged"}\n',
)


def kind_of(task_path: str) -> Kind | None:
    """The kind of a job, from its task path (None for a job not ours)."""
    module, _, name = task_path.rpartition(".")
    if module == "tests.soak.flows":
        return WORKFLOW
    return KINDS.get(name) if module == "tests.soak.tasks" else None


def graph_shape(rng: random.Random) -> dict:
    """The shape of one graph of the workflow kind (see flows.py): which
    crawl fans out and to how many pages, which one (if any) always fails,
    and whether a report runs anyway."""
    sources = ["merchant", "adwords", "analytics"]
    broken = rng.choice(sources) if rng.random() < GRAPH_BROKEN else None
    fanout = rng.choice([source for source in sources if source != broken])
    return {
        "fanout": fanout,
        "pages": rng.randint(*GRAPH_PAGES),
        "broken": broken,
        "report": rng.random() < GRAPH_REPORT,
    }


def parse_kinds(text: str | None) -> list[Kind]:
    """``--kinds noop,nap``: the kinds to enqueue (all when None)."""
    if not text:
        return list(KINDS.values())
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in KINDS]
    if unknown or not names:
        raise ValueError(
            f"unknown kind(s) {', '.join(unknown) or '(none)'}; "
            f"the kinds are {', '.join(KINDS)}"
        )
    return [KINDS[name] for name in names]
