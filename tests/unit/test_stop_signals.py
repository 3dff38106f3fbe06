"""A child's stop signals: ignored until its supervisor closes the stop pipe.

A real process (a small Python script) with the handler the worker's children
install, real signals, and a conversation over its stdin and stdout, so that
"it ignored the signal" is an answer, not a wait. Then the supervisor's side:
it closes the pipe before it signals.
"""

from __future__ import annotations

import os
import select
import selectors
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from django_jobs.worker import children as children_module
from django_jobs.worker.children import Children
from django_jobs.worker.failures import Stop
from django_jobs.worker.zygote import Forking

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import os, sys, time
from django_jobs.worker.process import obey_only_the_supervisor

obey_only_the_supervisor(int(sys.argv[1]))
print("ready", flush=True)
for line in sys.stdin:
    if line == "fork\\n":
        if os.fork() == 0:  # it answers itself, once Python runs in it
            print(os.getpid(), flush=True)
            while True:
                time.sleep(1)
    elif line == "reap\\n":
        _, status = os.wait()
        print(os.waitstatus_to_exitcode(status), flush=True)
    else:
        print("alive", flush=True)
"""


class Child:
    """The script, with the supervisor's end of its stop pipe."""

    def __init__(self) -> None:
        stop_r, self.stop_w = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, str(stop_r)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            pass_fds=[stop_r],
        )
        os.close(stop_r)
        assert self.answer() == "ready"

    def ask(self, line: str) -> str:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.answer()

    def answer(self) -> str:
        ready, _, _ = select.select([self.process.stdout], [], [], 30)
        assert ready, "the script did not answer within 30 s"
        return self.process.stdout.readline().strip()

    def signal(self, signum: int) -> None:
        os.kill(self.process.pid, signum)

    def let_go(self) -> None:
        os.close(self.stop_w)
        self.stop_w = None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)
        if self.stop_w is not None:
            os.close(self.stop_w)


@pytest.fixture
def child():
    made = Child()
    yield made
    made.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_before_the_supervisor_lets_go_is_ignored(child, signum):
    child.signal(signum)
    assert child.ask("ping") == "alive"
    child.signal(signum)
    assert child.ask("ping") == "alive"


def test_once_the_supervisor_lets_go_sigterm_kills_as_it_always_did(child):
    child.signal(signal.SIGTERM)
    assert child.ask("ping") == "alive"
    child.let_go()
    child.signal(signal.SIGTERM)
    assert child.process.wait(timeout=10) == -signal.SIGTERM


def test_a_process_the_job_forks_keeps_the_default(child):
    """A forked process of the job (a multiprocessing worker, say) dies of a
    SIGTERM as it would without the worker: Pool.terminate() still works."""
    grandchild = int(child.ask("fork"))
    os.kill(grandchild, signal.SIGTERM)
    assert child.ask("reap") == str(-signal.SIGTERM)
    assert child.ask("ping") == "alive"


def test_the_supervisor_closes_the_stop_pipe_before_its_sigterm(monkeypatch):
    """Children.stop lets the child go first, so the SIGTERM that follows
    finds the pipe closed; a stop that is already under way sends nothing
    new, and removing the child closes nothing twice."""
    pool = Children(
        jobs_per_child=1, kill_grace=1, selector=selectors.DefaultSelector()
    )
    ours, theirs = socket.socketpair()
    stop_r, stop_w = os.pipe()
    pool.pending[1] = Forking(1, ours, output=None, stop_pipe=stop_w)
    child = pool.forked(1, pid=4242)
    sent = []

    def kill_group(pid: int, signum: int) -> None:
        sent.append((signum, select.select([stop_r], [], [], 0)[0] == [stop_r]))

    monkeypatch.setattr(children_module, "kill_group", kill_group)
    try:
        pool.stop(child, Stop.TIMEOUT)
        pool.stop(child, Stop.TIMEOUT)
        assert sent == [(signal.SIGTERM, True)]  # the pipe was closed: readable
        assert child.stop_pipe is None
        pool.remove(child)
    finally:
        theirs.close()
        os.close(stop_r)
