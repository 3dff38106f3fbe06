"""The console's layout of a workflow's graph (django_jobs.admin.graph).

Plain values in, geometry out: no database.
"""

from __future__ import annotations

import itertools
import re

from django_jobs.admin.graph import (
    GROUP_ABOVE,
    JOB_HEIGHT,
    Edge,
    Node,
    draw,
    layers,
)


def nodes(*specs: tuple[int, str, str]) -> list[Node]:
    return [Node(pk, f"app.tasks.{task}", state) for pk, task, state in specs]


def test_a_jobs_layer_is_its_longest_path_from_a_root():
    #   1 -> 2 -> 3 -> 5
    #   1 ------------> 5   (5 still goes after 3)
    #   4 (alone)
    edges = [(1, 2), (2, 3), (3, 5), (1, 5)]
    assert layers([1, 2, 3, 4, 5], edges) == {1: 0, 2: 1, 3: 2, 4: 0, 5: 3}


def test_a_diamond_fans_in_after_its_longest_branch():
    edges = [(1, 2), (1, 3), (3, 4), (2, 5), (4, 5)]
    assert layers(range(1, 6), edges) == {1: 0, 2: 1, 3: 1, 4: 2, 5: 3}


def test_edges_to_unknown_jobs_and_to_itself_are_ignored():
    assert layers([1, 2], [(1, 2), (9, 1), (2, 9), (2, 2)]) == {1: 0, 2: 1}


def test_a_cycle_goes_after_the_rest_instead_of_looping():
    found = layers([1, 2, 3, 4], [(1, 2), (2, 3), (3, 2), (3, 4)])
    assert found[1] == 0
    assert found[2] == found[3] == found[4] > 0


def pipeline() -> tuple[list[Node], list[Edge]]:
    """Three crawls, match after them (by name), analyze after match."""
    jobs = nodes(
        (1, "crawl", "done"),
        (2, "crawl", "reserved"),
        (3, "crawl", "ready"),
        (4, "match", "waiting"),
        (5, "analyze", "waiting"),
    )
    names = {1: "merchant", 2: "adwords", 3: "analytics"}
    edges = [Edge(up, 4, name) for up, name in names.items()] + [Edge(4, 5)]
    return jobs, edges


def test_a_small_graph_has_a_box_per_job_and_arrows_pointing_right():
    drawing = draw(*pipeline())
    assert not drawing.grouped
    assert [(box.first, box.layer, box.state) for box in drawing.boxes] == [
        (1, 0, "done"),
        (2, 0, "reserved"),
        (3, 0, "ready"),
        (4, 1, "waiting"),
        (5, 2, "waiting"),
    ]
    assert len(drawing.arrows) == 4
    for arrow in drawing.arrows:
        start, end = arrow_ends(arrow.path)
        assert start[0] == arrow.upstream.x + arrow.upstream.width
        assert end[0] == arrow.downstream.x > start[0]  # upstream -> downstream
        assert arrow.downstream.y <= end[1] <= arrow.downstream.y + JOB_HEIGHT
    assert sorted(a.label for a in drawing.arrows) == [
        "",
        "adwords",
        "analytics",
        "merchant",
    ]
    assert drawing.width == max(b.x + b.width for b in drawing.boxes) + 10


def arrow_ends(path: str) -> tuple[tuple[float, float], tuple[float, float]]:
    numbers = [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?", path)]
    return (numbers[0], numbers[1]), (numbers[-2], numbers[-1])


def test_boxes_of_a_column_do_not_overlap_and_the_drawing_holds_them():
    jobs = nodes(*((n, "page", "ready") for n in range(1, 51)))
    jobs += nodes((51, "match", "waiting"))
    edges = [Edge(n, 51) for n in range(1, 51)]
    drawing = draw(jobs, edges)
    column = sorted((b for b in drawing.boxes if b.layer == 0), key=lambda b: b.y)
    assert len(column) == 50
    for above, below in itertools.pairwise(column):
        assert above.y + above.height < below.y
    assert column[-1].y + column[-1].height < drawing.height
    fan_in = next(b for b in drawing.boxes if b.layer == 1)
    assert column[0].y < fan_in.y < column[-1].y  # centred on what it waits for


def test_a_column_follows_the_order_of_what_its_boxes_wait_for():
    # 1 -> 4, 2 -> 5, 3 -> 6, enqueued in the opposite order in column 1.
    jobs = nodes(
        (1, "a", "done"),
        (2, "b", "done"),
        (3, "c", "done"),
        (4, "z", "ready"),
        (5, "y", "ready"),
        (6, "x", "ready"),
    )
    drawing = draw(jobs, [Edge(3, 4), Edge(2, 5), Edge(1, 6)])
    by_id = {box.first: box for box in drawing.boxes}
    assert by_id[6].y < by_id[5].y < by_id[4].y  # no arrow crosses another


def test_a_fan_out_of_5000_is_a_handful_of_grouped_boxes():
    pages = range(3, 5003)
    states = ["done", "reserved", "ready", "buried"]
    jobs = nodes((1, "crawl", "done"), (2, "match", "waiting"))
    jobs += nodes(*((n, "page", states[n % 4]) for n in pages))
    edges = [Edge(1, 2, "crawl")] + [Edge(n, 2) for n in pages]
    drawing = draw(jobs, edges)
    assert drawing.grouped
    assert drawing.jobs == 5002
    sizes = {box.task_name: box.size for box in drawing.boxes}
    assert sizes == {"crawl": 1, "page": 5000, "match": 1}
    page = next(box for box in drawing.boxes if box.task_name == "page")
    assert page.counts["done"] == page.counts["buried"] == 1250
    assert page.count_list == [
        ("ready", 1250),
        ("reserved", 1250),
        ("done", 1250),
        ("buried", 1250),
    ]
    assert [s.state for s in page.bar] == ["ready", "reserved", "done", "buried"]
    assert abs(sum(s.width for s in page.bar) - (page.width - 16)) < 1
    assert page.state == ""  # a group has no one state
    labels = sorted(arrow.label for arrow in drawing.arrows)
    assert labels == ["crawl", "\u00d75000"]


def test_grouping_starts_past_the_limit_of_jobs_or_of_edges():
    def chain(n: int) -> tuple[list[Node], list[Edge]]:
        jobs = nodes(*((i, "step", "ready") for i in range(n)))
        return jobs, [Edge(i, i + 1) for i in range(n - 1)]

    assert not draw(*chain(GROUP_ABOVE)).grouped
    assert draw(*chain(GROUP_ABOVE + 1)).grouped
    # 30 jobs, each of 15 waiting for each of 15 others: 225 edges.
    jobs = nodes(*((i, "t", "ready") for i in range(30)))
    edges = [Edge(up, down) for up in range(15) for down in range(15, 30)]
    assert not draw(jobs, edges).grouped
    assert draw(jobs, edges, edges_above=200).grouped
    grouped = draw(jobs, edges, edges_above=200)
    assert [(box.layer, box.size) for box in grouped.boxes] == [(0, 15), (1, 15)]
    assert [arrow.count for arrow in grouped.arrows] == [225]


def test_edges_from_outside_the_workflow_are_counted_not_drawn():
    jobs, edges = pipeline()
    drawing = draw(jobs, [*edges, Edge(99, 4, "elsewhere")])
    assert drawing.outside == 1
    assert len(drawing.arrows) == 4


def test_an_empty_workflow_draws_nothing():
    drawing = draw([], [])
    assert (drawing.boxes, drawing.arrows, drawing.jobs) == ([], [], 0)
