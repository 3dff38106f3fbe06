"""A lane child's span export on its event loop (span_export.LoopExport):
in batches, never per span, and nothing left behind at its end."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

from django_jobs.worker import span_export


class Exporter:
    def __init__(self):
        self.calls = []

    def export(self, spans):
        self.calls.append(len(spans))


def span():
    flags = SimpleNamespace(sampled=True)
    return SimpleNamespace(context=SimpleNamespace(trace_flags=flags))


@pytest.fixture
def lane(monkeypatch):
    """A loop, its LoopExport, and the exporter behind this process's buffer."""
    exporter = Exporter()
    buffer = span_export.JobEndProcessor(exporter)
    monkeypatch.setattr(span_export, "_buffers", [buffer])
    monkeypatch.setattr(span_export, "LANE_INTERVAL", 0.05)
    monkeypatch.setattr(span_export, "LANE_BATCH", 10)
    loop = asyncio.new_event_loop()
    export = span_export.LoopExport(loop)
    export.start()
    yield SimpleNamespace(loop=loop, export=export, buffer=buffer, exporter=exporter)
    export.stop()
    loop.close()


def test_spans_leave_by_the_timer_in_one_call(lane):
    for _ in range(3):
        lane.buffer.on_end(span())
    assert lane.exporter.calls == []  # not one export per span
    lane.loop.run_until_complete(asyncio.sleep(0.15))
    assert lane.exporter.calls == [3]


def test_a_full_batch_leaves_at_once(lane):
    async def busy():
        for _ in range(25):
            lane.buffer.on_end(span())
        await asyncio.sleep(0)  # the loop's next turn, well before the timer
        await asyncio.sleep(0)

    lane.loop.run_until_complete(busy())
    assert lane.exporter.calls == [25]  # one call, however many spans since


def test_a_span_ended_in_another_thread_is_exported_too(lane):
    ended = threading.Thread(target=lane.buffer.on_end, args=(span(),))
    ended.start()
    ended.join()
    lane.loop.run_until_complete(asyncio.sleep(0.15))
    assert lane.exporter.calls == [1]


def test_what_waits_leaves_when_the_lane_ends(lane):
    lane.buffer.on_end(span())
    lane.export.stop()
    assert lane.exporter.calls == [1]
    assert lane.buffer.waiting is None
