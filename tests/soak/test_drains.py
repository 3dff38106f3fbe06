"""The soak's rule for graceful stops, on made-up data: a run in flight at a
SIGTERM to its worker (or to every process of it) must not die of it."""

import pytest

from tests.soak.chaos import Event
from tests.soak.drains import cut_short
from tests.soak.kinds import KINDS
from tests.soak.records import JobRecord, RunRecord

CHILD, ZYGOTE, SUP = "300@30", "200@20", "100@10"


def run(start, done=None, attempt=1, supervisor=SUP):
    return RunRecord("r", 1, attempt, CHILD, ZYGOTE, supervisor, start, start, done)


def job(*runs, errors=()):
    return JobRecord(1, "tests.soak.tasks.nap", KINDS["nap"], "done", 2, 20, 5,
                     list(errors), list(runs))  # fmt: skip


def crashed(how, attempt=1):
    return {
        "attempt": attempt,
        "exception_class_path": "django_jobs.exceptions.ChildCrashed",
        "traceback": f"ChildCrashed: the job's process ended ({how}) without "
        "reporting an outcome\n",
    }


def stop(action="term_group", at=10.0, hits=(SUP, ZYGOTE, CHILD)):
    return Event(action, at, at, hits=list(hits))


@pytest.mark.parametrize("action", ["term_group", "term_worker"])
@pytest.mark.parametrize(
    "how", ["killed by signal 15 (SIGTERM)", "the worker's fork server died"]
)
def test_a_run_in_flight_that_died_of_the_stop_is_cut_short(action, how):
    killed = job(run(start=9.0), run(12.0, 12.5, attempt=2), errors=[crashed(how)])
    [found] = cut_short([killed], [stop(action)])
    assert (found.run.attempt, found.stop.action) == (1, action)
    assert how in found.error


@pytest.mark.parametrize(
    ("runs", "errors", "events"),
    [
        # drained: it finished after the signal, its own outcome recorded
        ([run(9.0, 11.0)], [], [stop()]),
        # its own crash, not the stop's (the crash kind exits with code 3)
        ([run(9.0), run(12.0, 12.5, 2)], [crashed("exit code 3")], [stop()]),
        # killed by the chaos loop's kill_child (SIGKILL), no stop
        ([run(9.0), run(12.0, 12.5, 2)], [crashed("killed by signal 9 (SIGKILL)")],
         [stop(action="kill_child")]),
        # the stop hit another worker
        ([run(9.0), run(12.0, 12.5, 2)], [crashed("killed by signal 15 (SIGTERM)")],
         [stop(hits=("101@11",))]),
        # it started after the stop (elsewhere, or the next incarnation)
        ([run(11.0), run(12.0, 12.5, 2)], [crashed("killed by signal 15 (SIGTERM)")],
         [stop()]),
    ],
)  # fmt: skip
def test_what_a_drain_allows(runs, errors, events):
    assert cut_short([job(*runs, errors=errors)], events) == []


def test_an_error_another_worker_recorded_is_not_the_stops():
    """The drain gave the run back uncounted; the same attempt then died on
    another worker, of another chaos action (a fork server killed there)."""
    theirs = dict(crashed("the worker's fork server died"), worker_id="h-999-abcd")
    ours = dict(crashed("killed by signal 15 (SIGTERM)"), worker_id="h-100-abcd")
    assert cut_short([job(run(5.0), errors=[theirs])], [stop()]) == []
    assert len(cut_short([job(run(5.0), errors=[ours])], [stop()])) == 1


def test_a_fork_server_killed_before_the_stop_is_not_the_stops():
    """kill_fork_server ended the run (its error recorded at t=9.5); the
    worker, stopping already, was then picked for a term_worker at t=10."""
    from datetime import UTC, datetime

    def at(seconds):
        return datetime.fromtimestamp(seconds, UTC).isoformat()

    before = dict(crashed("the worker's fork server died"), at=at(9.5))
    after = dict(crashed("the worker's fork server died"), at=at(10.1))
    assert cut_short([job(run(5.0), errors=[before])], [stop("term_worker")]) == []
    assert len(cut_short([job(run(5.0), errors=[after])], [stop("term_worker")])) == 1
