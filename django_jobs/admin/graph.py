"""A workflow's graph as the console draws it: columns, rows and arrows.

Plain Python over plain values, without the database: the workflow page
reads its jobs and its edges in two queries and hands them here, so that
the page costs those two queries whatever the graph, and a test can lay out
any graph without a database.

- Column (layer): the longest path to a job from a job that waits for
  nothing. Every arrow points right, in the direction of flow, and a fan-in
  step stands after the longest of the branches it waits for.
- Row: in each column, boxes are ordered by the mean height of the boxes
  they wait for (one barycentre pass, left to right), which keeps most
  arrows short and uncrossed.
- Groups: past ``GROUP_ABOVE`` jobs (or ``EDGES_ABOVE`` edges) a box per job
  is no longer readable, so the jobs of one task in one column become one
  box with their counts per state: a fan-out of 5,000 pages is one box.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..stats import DISPLAY_STATES

#: More jobs than this, or more edges than ``EDGES_ABOVE``: one box per
#: (column, task) instead of one per job.
GROUP_ABOVE = 200
EDGES_ABOVE = 600

BOX_WIDTH = 200
JOB_HEIGHT = 30
GROUP_HEIGHT = 56
GAP_X = 88
GAP_Y = 10
MARGIN = 10
BAR_PADDING = 8

TIMES = "\u00d7"  # the multiplication sign: "page \u00d75000"

#: The order of a group's counts and of its bar: that of a job's life.
STATES = tuple(str(state) for state in DISPLAY_STATES)


@dataclass(frozen=True, slots=True)
class Node:
    """A job of the workflow, as the graph needs it."""

    id: int
    task_path: str
    #: Its display state (a ready job due later is ``delayed``).
    state: str


@dataclass(frozen=True, slots=True)
class Edge:
    """``downstream`` waits for ``upstream``; ``name`` is what ``after()``
    called it ("" for none)."""

    upstream: int
    downstream: int
    name: str = ""


@dataclass(slots=True)
class Segment:
    """A state's share of a group's bar."""

    state: str
    count: int
    x: float
    width: float


@dataclass(slots=True)
class Box:
    """What is drawn for one job, or for the jobs of one task in one column."""

    layer: int
    task_path: str
    job_ids: list[int]
    counts: dict[str, int]
    grouped: bool = False
    x: int = 0
    y: int = 0
    width: int = BOX_WIDTH
    height: int = JOB_HEIGHT
    #: Where the box links to: its job's page, or the job list of its jobs
    #: (the admin sets it; the layout knows no URLs).
    url: str = ""
    bar: list[Segment] = field(default_factory=list)

    @property
    def size(self) -> int:
        return len(self.job_ids)

    @property
    def first(self) -> int:
        return self.job_ids[0]

    @property
    def task_name(self) -> str:
        return self.task_path.rpartition(".")[2]

    @property
    def state(self) -> str:
        """The state of a box of one job; "" for a group of several."""
        if self.size != 1:
            return ""
        return next(state for state, count in self.counts.items() if count)

    @property
    def done(self) -> int:
        return self.counts.get("done", 0)

    @property
    def count_list(self) -> list[tuple[str, int]]:
        """(state, count) of the states its jobs are in, in ``STATES`` order."""
        return [(state, self.counts[state]) for state in STATES if self.counts[state]]

    @property
    def middle(self) -> float:
        return self.y + self.height / 2

    # Where the template writes a box's text and bar.

    @property
    def text_x(self) -> int:
        return self.x + BAR_PADDING

    @property
    def text_y(self) -> int:
        return self.y + self.height // 2 + 4

    @property
    def title_y(self) -> int:
        return self.y + 17

    @property
    def bar_y(self) -> int:
        return self.y + 24

    @property
    def count_y(self) -> int:
        return self.y + 47


@dataclass(slots=True)
class Arrow:
    """The edges from the jobs of one box to the jobs of another."""

    upstream: Box
    downstream: Box
    count: int = 0
    names: list[str] = field(default_factory=list)
    path: str = ""
    label: str = ""
    label_x: int = 0
    label_y: int = 0


@dataclass(slots=True)
class Drawing:
    """Everything the template needs to draw a workflow's graph as SVG."""

    boxes: list[Box]
    arrows: list[Arrow]
    width: int
    height: int
    grouped: bool
    jobs: int
    #: Edges from or to a job outside the workflow: not drawn.
    outside: int = 0


def layers(job_ids: Iterable[int], edges: Iterable[tuple[int, int]]) -> dict[int, int]:
    """Each job's column: the longest path to it from a job that waits for
    none, in one pass in topological order (O(jobs + edges)).

    The queue refuses cycles; jobs on one anyway (a row written by hand) go
    after all the others, rather than the page looping or failing.
    """
    layer = dict.fromkeys(job_ids, 0)
    waits = dict.fromkeys(layer, 0)
    downstream: dict[int, list[int]] = defaultdict(list)
    for up, down in edges:
        if up in layer and down in layer and up != down:
            downstream[up].append(down)
            waits[down] += 1
    free = deque(job for job, count in waits.items() if not count)
    while free:
        job = free.popleft()
        for down in downstream[job]:
            layer[down] = max(layer[down], layer[job] + 1)
            waits[down] -= 1
            if not waits[down]:
                free.append(down)
    stuck = [job for job, count in waits.items() if count]
    if stuck:
        last = max(layer.values()) + 1
        for job in stuck:
            layer[job] = last
    return layer


def draw(
    jobs: Sequence[Node],
    edges: Sequence[Edge],
    *,
    group_above: int = GROUP_ABOVE,
    edges_above: int = EDGES_ABOVE,
) -> Drawing:
    """Lay out a workflow's jobs (in id order) and the edges between them."""
    known = {job.id for job in jobs}
    inside = [e for e in edges if e.upstream in known and e.downstream in known]
    column = layers(
        (job.id for job in jobs), ((e.upstream, e.downstream) for e in inside)
    )
    grouped = len(jobs) > group_above or len(inside) > edges_above
    boxes, box_of = _boxes(jobs, column, grouped)
    arrows = _arrows(inside, box_of)
    height = _place(boxes, arrows, GROUP_HEIGHT if grouped else JOB_HEIGHT)
    for box in boxes:
        box.bar = _bar(box) if grouped else []
    _route(boxes, arrows)
    width = max((box.x + box.width for box in boxes), default=0) + MARGIN
    return Drawing(
        boxes=boxes,
        arrows=arrows,
        width=width,
        height=height,
        grouped=grouped,
        jobs=len(jobs),
        outside=len(edges) - len(inside),
    )


def _boxes(
    jobs: Sequence[Node], column: dict[int, int], grouped: bool
) -> tuple[list[Box], dict[int, Box]]:
    """One box per job, or per (column, task); and each job's box."""
    boxes: dict[object, Box] = {}
    box_of: dict[int, Box] = {}
    for job in jobs:
        layer = column[job.id]
        key = (layer, job.task_path) if grouped else job.id
        box = boxes.get(key)
        if box is None:
            counts = dict.fromkeys(STATES, 0)
            box = boxes[key] = Box(layer, job.task_path, [], counts, grouped)
        box.job_ids.append(job.id)
        box.counts[job.state] = box.counts.get(job.state, 0) + 1
        box_of[job.id] = box
    return list(boxes.values()), box_of


def _arrows(edges: Iterable[Edge], box_of: dict[int, Box]) -> list[Arrow]:
    """One arrow per pair of boxes with edges between them."""
    arrows: dict[tuple[int, int], Arrow] = {}
    for edge in edges:
        up, down = box_of[edge.upstream], box_of[edge.downstream]
        key = (id(up), id(down))
        arrow = arrows.get(key)
        if arrow is None:
            arrow = arrows[key] = Arrow(up, down)
        arrow.count += 1
        if edge.name and edge.name not in arrow.names:
            arrow.names.append(edge.name)
    return list(arrows.values())


def _place(boxes: list[Box], arrows: list[Arrow], height: int) -> int:
    """Give every box its place, columns centred on the tallest; return the
    drawing's height."""
    columns: dict[int, list[Box]] = defaultdict(list)
    for box in boxes:
        box.height = height
        columns[box.layer].append(box)
    upstream: dict[int, list[Box]] = defaultdict(list)
    for arrow in arrows:
        upstream[id(arrow.downstream)].append(arrow.upstream)
    tallest = max((len(col) for col in columns.values()), default=0)
    total = tallest * height + max(tallest - 1, 0) * GAP_Y
    for layer in sorted(columns):
        column = columns[layer]
        if layer:
            column.sort(key=lambda box: (_mean_middle(upstream[id(box)]), box.first))
        else:
            column.sort(key=lambda box: box.first)
        span = len(column) * height + (len(column) - 1) * GAP_Y
        top = MARGIN + (total - span) // 2
        for row, box in enumerate(column):
            box.x = MARGIN + layer * (BOX_WIDTH + GAP_X)
            box.y = top + row * (height + GAP_Y)
    return total + 2 * MARGIN


def _mean_middle(boxes: list[Box]) -> float:
    if not boxes:
        return float("inf")  # waits for nothing drawn: at the bottom
    return sum(box.middle for box in boxes) / len(boxes)


def _bar(box: Box) -> list[Segment]:
    """A group's bar: each state's share of its jobs, in ``STATES`` order."""
    width = box.width - 2 * BAR_PADDING
    segments, x = [], float(box.x + BAR_PADDING)
    for state, count in box.count_list:
        share = round(width * count / box.size, 1)
        segments.append(Segment(state, count, round(x, 1), max(share, 1.0)))
        x += share
    return segments


def _route(boxes: list[Box], arrows: list[Arrow]) -> None:
    """Draw each arrow from the right side of its upstream box to the left
    side of its downstream box; a box's arrows leave and arrive spread
    along its side, in the order of the boxes at their other end."""
    leaving: dict[int, list[Arrow]] = defaultdict(list)
    arriving: dict[int, list[Arrow]] = defaultdict(list)
    for arrow in arrows:
        leaving[id(arrow.upstream)].append(arrow)
        arriving[id(arrow.downstream)].append(arrow)
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    for box in boxes:
        out = sorted(leaving[id(box)], key=lambda a: a.downstream.middle)
        for n, arrow in enumerate(out):
            start[id(arrow)] = box.y + box.height * (n + 1) / (len(out) + 1)
        into = sorted(arriving[id(box)], key=lambda a: a.upstream.middle)
        for n, arrow in enumerate(into):
            end[id(arrow)] = box.y + box.height * (n + 1) / (len(into) + 1)
    for arrow in arrows:
        x1, y1 = arrow.upstream.x + arrow.upstream.width, round(start[id(arrow)], 1)
        x2, y2 = arrow.downstream.x, round(end[id(arrow)], 1)
        bend = max(GAP_X / 2, (x2 - x1) / 3)
        arrow.path = f"M{x1} {y1} C{x1 + bend:g} {y1} {x2 - bend:g} {y2} {x2} {y2}"
        # The label where the arrow leaves its box: beside the job it names.
        arrow.label = _label(arrow)
        arrow.label_x = x1 + 4
        arrow.label_y = round(y1 - 3)


def _label(arrow: Arrow) -> str:
    """The names ``after()`` gave the edges, and how many there are if more
    than one (after a multiplication sign): "merchant", "\u00d75000"."""
    names = ", ".join(arrow.names[:2]) + (", …" if len(arrow.names) > 2 else "")
    if arrow.count > 1:
        return f"{names} {TIMES}{arrow.count}".strip()
    return names
