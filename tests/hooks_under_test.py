"""Hooks for the tests: well-behaved ones that leave a trace of each call in a
file (``HOOK_TEST_LOG``), and misbehaving ones (they raise, hang or return
what they should not)."""

import json
import os
import threading
import time


def _note(**fields):
    path = os.environ.get("HOOK_TEST_LOG")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")


class Recording:
    def before_enqueue(self, enqueue):
        _note(at="before_enqueue", task=enqueue.task.name)

    def after_enqueue(self, enqueue):
        _note(at="after_enqueue", ids=enqueue.ids)

    def around_run(self, run):
        _note(at="run start", job=run.job_id)
        ended = yield
        _note(at="run end", job=run.job_id, ok=ended.ok)

    def on_outcome(self, outcome):
        _note(at="outcome", job=outcome.job_id, then=outcome.then)


class Raising:
    def before_enqueue(self, enqueue):
        raise RuntimeError("before_enqueue breaks")

    def after_enqueue(self, enqueue):
        raise RuntimeError("after_enqueue breaks")

    def around_run(self, run):
        yield
        raise RuntimeError("around_run breaks")

    def on_outcome(self, outcome):
        raise RuntimeError("on_outcome breaks")


class Hanging:
    def before_enqueue(self, enqueue):
        time.sleep(30)

    def around_run(self, run):
        time.sleep(30)
        yield

    def on_outcome(self, outcome):
        time.sleep(30)


class Garbage:
    def before_enqueue(self, enqueue):
        enqueue.trace_context = 42
        return "garbage"

    def around_run(self, run):
        return 42

    def on_outcome(self, outcome):
        return object()


class Twice:
    def around_run(self, run):
        yield
        yield


class Nothing:
    """Not a hook: it has none of the methods."""


class Seen:
    """Keeps each outcome it is told of (in this process), and the threads
    it was told in."""

    def __init__(self):
        self.outcomes = []
        self.threads = set()

    def on_outcome(self, outcome):
        self.threads.add(threading.current_thread().name)
        self.outcomes.append(outcome)
