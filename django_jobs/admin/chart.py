"""The dashboard's chart: jobs done and failed per minute, as inline SVG.

The geometry is computed here and drawn by a template, so the page needs no
JavaScript and no chart library, and works offline and under a strict CSP.
"""

from __future__ import annotations

from datetime import datetime

from django.utils import formats, timezone

WIDTH, HEIGHT = 720, 200
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 22


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def bars(series: list[tuple[datetime, int, int]]) -> dict:
    """SVG geometry for stacked done/failed bars, one per (minute, done, failed)."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top = nice_ceiling(max((done + failed for _, done, failed in series), default=0))
    slot = plot_w / max(len(series), 1)
    base = TOP + plot_h
    drawn = []
    for i, (minute, done, failed) in enumerate(series):
        done_h = plot_h * done / top
        failed_h = plot_h * failed / top
        label = formats.time_format(timezone.localtime(minute), "H:i")
        drawn.append(
            {
                "x": round(LEFT + i * slot + slot * 0.1, 1),
                "width": round(slot * 0.8, 1),
                "done_y": round(base - done_h, 1),
                "done_h": round(done_h, 1),
                "failed_y": round(base - done_h - failed_h, 1),
                "failed_h": round(failed_h, 1),
                "done": done,
                "failed": failed,
                "label": label,
                "tick": i % 10 == 0 or i == len(series) - 1,
                "tick_x": round(LEFT + i * slot + slot / 2, 1),
            }
        )
    grid = [
        {"y": round(base - plot_h * value / top, 1), "value": value}
        for value in sorted({0, top // 2, top})
    ]
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "label_x": LEFT - 4,
        "label_y": HEIGHT - 6,
        "bars": drawn,
        "grid": grid,
        "done": sum(done for _, done, _ in series),
        "failed": sum(failed for _, _, failed in series),
    }
