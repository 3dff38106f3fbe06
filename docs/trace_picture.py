"""Draw one job's trace from spans the SDK exported (one JSON object a line).

    python docs/trace_picture.py SPANS.jsonl docs/_static/job-trace.svg

Spans as ``ConsoleSpanExporter`` writes them (tests/tracing_settings.py
exports so, from every process of a worker): one bar per span on a common
time axis, indented under its parent, with the gap between the enqueue and
the run (the job's wait in the queue) shaded. Plain SVG: no dependency.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from html import escape

ROW, LEFT, WIDTH, LABEL = 26, 330, 620, 12
COLOURS = {"SERVER": "#4c78a8", "INTERNAL": "#72b7b2", "PRODUCER": "#f58518",
           "CONSUMER": "#54a24b"}  # fmt: skip


def when(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def ordered(spans: list[dict]) -> list[tuple[int, dict]]:
    """Depth-first, children by start time: (depth, span)."""
    by_parent: dict[str | None, list[dict]] = {}
    ids = {span["context"]["span_id"] for span in spans}
    for span in spans:
        parent = span["parent_id"] if span["parent_id"] in ids else None
        by_parent.setdefault(parent, []).append(span)
    out: list[tuple[int, dict]] = []

    def walk(parent, depth):
        for span in sorted(by_parent.get(parent, []), key=lambda s: s["start_time"]):
            out.append((depth, span))
            walk(span["context"]["span_id"], depth + 1)

    walk(None, 0)
    return out


def draw(spans: list[dict]) -> str:
    rows = ordered(spans)
    start = min(when(s["start_time"]) for s in spans)
    end = max(when(s["end_time"]) for s in spans)
    scale = WIDTH / (end - start)
    height = ROW * (len(rows) + 2)
    svg = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{LEFT + WIDTH + 90}" '
        f'height="{height}" font-family="sans-serif" font-size="{LABEL}">',
        '<rect width="100%" height="100%" fill="white"/>',
    ]
    for row, (depth, span) in enumerate(rows):
        y = ROW * (row + 1)
        x0 = LEFT + (when(span["start_time"]) - start) * scale
        x1 = LEFT + (when(span["end_time"]) - start) * scale
        kind = span["kind"].rpartition(".")[2]
        colour = (
            "#e45756"
            if span["status"]["status_code"] == "ERROR"
            else COLOURS.get(kind, "#999")
        )
        took = (when(span["end_time"]) - when(span["start_time"])) * 1000
        process = span["resource"]["attributes"].get("service.name", "")
        label = f"{span['name']}  ({kind.lower()}, {process})"
        svg.append(
            f'<text x="{8 + 14 * depth}" y="{y + 14}">{escape(label)}</text>'
            f'<rect x="{x0:.1f}" y="{y + 3}" width="{max(x1 - x0, 2):.1f}" '
            f'height="{ROW - 8}" fill="{colour}" rx="2"/>'
            f'<text x="{x1 + 4:.1f}" y="{y + 14}" fill="#555">'
            f"{took:.1f} ms</text>"
        )
        if kind == "CONSUMER":  # the wait in the queue, since its enqueue
            parent = next(
                (s for _, s in rows if s["context"]["span_id"] == span["parent_id"]),
                None,
            )
            if parent is not None:
                px = LEFT + (when(parent["end_time"]) - start) * scale
                svg.append(
                    f'<rect x="{px:.1f}" y="{y + 3}" width="{max(x0 - px, 0):.1f}" '
                    f'height="{ROW - 8}" fill="#ddd"/>'
                    f'<text x="{px + 2:.1f}" y="{y - 1}" fill="#888" font-size="10">'
                    "waiting in the queue</text>"
                )
    total = (end - start) * 1000
    svg.append(
        f'<text x="{LEFT}" y="{height - 6}" fill="#555">0 ms</text>'
        f'<text x="{LEFT + WIDTH - 40}" y="{height - 6}" fill="#555">{total:.0f} ms'
        "</text></svg>"
    )
    return "\n".join(svg)


def main() -> None:
    source, target = sys.argv[1:3]
    with open(source) as lines:
        spans = [json.loads(line) for line in lines if line.strip()]
    with open(target, "w") as out:
        out.write(draw(spans) + "\n")


if __name__ == "__main__":
    main()
