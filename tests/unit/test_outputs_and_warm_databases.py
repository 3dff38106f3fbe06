"""What Children hands off: its children's output pipes, and warm databases."""

from __future__ import annotations

import logging
import os
import selectors

import pytest

from django_jobs.worker.child_connections import WARM_MEMORY, WarmDatabases
from django_jobs.worker.output import Outputs
from tests.unit.fakes import job


@pytest.fixture
def selector():
    made = selectors.DefaultSelector()
    yield made
    made.close()


def child_pipe(outputs: Outputs, pid: int) -> int:
    """A child's own pipe, as the fork server makes it; the write end."""
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    outputs.child_forked(pid, read_end)
    return write_end


def test_a_child_that_runs_one_job_prints_into_its_own_pipe(selector, caplog):
    outputs = Outputs(selector, tail_size=100, per_job=False)
    write_end = child_pipe(outputs, 10)
    only = job(1)
    assert outputs.pipes_for(10, [only]) == []  # nothing to send
    os.write(write_end, b"hello\nno newline")
    with caplog.at_level(logging.INFO, logger="django_jobs.output"):
        assert outputs.collect(10, only) == ("hello\nno newline\n", False)
    assert "job 1 tests.tasks.noop (attempt 1): hello" in caplog.text
    outputs.child_gone(10)
    assert outputs.of_child == {}
    assert selector.get_map() == {}
    os.close(write_end)


def test_a_child_that_runs_several_gets_a_pipe_per_job(selector):
    outputs = Outputs(selector, tail_size=100, per_job=True)
    own = child_pipe(outputs, 10)
    first, second = job(1), job(2)
    ends = outputs.pipes_for(10, [first, second])
    assert len(ends) == 2
    os.write(ends[0], b"one\n")
    os.write(ends[1], b"two\n")
    os.write(own, b"between jobs\n")
    for end in ends:
        os.close(end)  # sent to the child: the supervisor's copies go
    assert outputs.collect(10, first) == ("one\n", False)
    assert set(outputs.of_job) == {2}  # the first job's pipe is closed
    outputs.child_gone(10)  # died before its second job ended
    assert (outputs.of_child, outputs.of_job) == ({}, {})
    assert selector.get_map() == {}
    os.close(own)


def test_no_pipes_when_output_is_not_captured(selector):
    outputs = Outputs(selector, tail_size=100, per_job=True)
    assert outputs.pipes_for(10, [job(1)]) == []
    assert outputs.collect(10, job(1)) is None
    outputs.read_child(10)
    outputs.child_gone(10)


def test_a_database_is_warm_until_jobs_stop_using_it():
    warm = WarmDatabases()
    assert not warm
    warm.used(["default", "other"])
    assert warm.aliases() == ["default", "other"]
    for _ in range(WARM_MEMORY - 1):
        warm.used(["default"])
    assert warm.aliases() == ["default", "other"]
    warm.used(["default"])
    assert warm.aliases() == ["default"]
