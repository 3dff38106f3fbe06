"""The soak's rules, on made-up data: what the duplicate window explains, what
it does not, and which overlaps are excused. No database, no processes."""

from datetime import UTC, datetime

import pytest

from tests.soak.analysis import Findings
from tests.soak.chaos import Event
from tests.soak.kinds import KINDS
from tests.soak.records import JobRecord, RunRecord
from tests.soak.timing import OPTIONS
from tests.soak.touches import checkpoints_missing, costly_attempts, runs_hit_by_blips
from tests.soak.window import SLACK
from tests.soak.workers import Incarnation

CHILD, ZYGOTE, SUP = "300@30", "200@20", "100@10"
OTHER_SUP = "101@11"
TIMEOUT = OPTIONS["WORKER_TIMEOUT"]


def run(name, start, done=None, last=None, attempt=1, chain=(CHILD, ZYGOTE, SUP)):
    return RunRecord(name, 1, attempt, *chain, start, last or done or start, done)


def job(*runs, state="done", kind="noop", errors=()):
    return JobRecord(1, f"tests.soak.tasks.{kind}", KINDS[kind], state, 2, 20, 5,
                     list(errors), list(runs))  # fmt: skip


def findings(*jobs, events=(), unfinished=(), enqueued=None, incarnations=()):
    enqueued = [j.id for j in jobs] if enqueued is None else enqueued
    return Findings(list(jobs), enqueued, list(unfinished), list(events),
                    list(incarnations), t0=0.0)  # fmt: skip


def event(action, at, hits=(), until=None):
    return Event(action, at, until if until is not None else at, hits=list(hits))


def taken_back(at, attempt=1, how="WorkerLost"):
    """The error a rescuer records when it takes an attempt back at ``at``."""
    when = datetime.fromtimestamp(at, UTC).isoformat()
    return {"attempt": attempt, "exception_class_path": f"django_jobs.exceptions.{how}",
            "at": when}  # fmt: skip


def twice(*events, second_start=20.0, errors=()):
    """A job whose first run did its work at t=10 and which ran again later."""
    first = run("a", start=9.0, done=10.0)
    second = run("b", start=second_start, done=second_start + 0.1, attempt=2)
    return findings(job(first, second, errors=errors), events=events).duplicates


@pytest.mark.parametrize(
    "events",
    [
        [event("kill_supervisor", 11.0, [SUP])],
        [event("kill_fork_server", 12.0, [ZYGOTE])],
        [event("kill_child", 10.0 - SLACK / 2, [CHILD])],  # its last row in flight
    ],
)
def test_what_hits_the_run_in_its_window_explains_the_duplicate(events):
    [duplicate] = twice(*events)
    assert duplicate.reason is not None


@pytest.mark.parametrize(
    ("outage", "rescued_at", "explained"),
    [
        (event("restart_database", 11.0, until=13.0), 16.0, True),
        (event("terminate_connections", 11.0, [SUP]), 14.0, True),
        (event("restart_database", 11.0, until=13.0), None, False),  # not rescued
        (event("restart_database", 11.0, until=13.0), 19.0, False),  # long after
        (event("terminate_connections", 11.0, [OTHER_SUP]), 14.0, False),
    ],
)
def test_a_database_outage_explains_only_a_worker_it_left_silent(
    outage, rescued_at, explained
):
    errors = [] if rescued_at is None else [taken_back(rescued_at)]
    [duplicate] = twice(outage, errors=errors)
    assert (duplicate.reason is not None) is explained


@pytest.mark.parametrize(
    ("stall", "rescued_at", "explained"),
    [
        ((5.0, 5.0 + TIMEOUT + 6), 12.0, True),  # taken back while it was stopped
        ((2.0, 9.8), 7.0, True),  # taken back before its run, which started late
        ((5.0, 5.0 + TIMEOUT + 6), None, False),  # stopped, but never taken back
        ((2.0, 8.0), 15.0, False),  # taken back long after the stall
        ((12.0, 12.0 + TIMEOUT - 1), 12.5, False),  # too short to be presumed dead
    ],
)
def test_a_stall_explains_a_duplicate_if_the_job_was_taken_back_meanwhile(
    stall, rescued_at, explained
):
    errors = [] if rescued_at is None else [taken_back(rescued_at)]
    [duplicate] = twice(
        event("stop_worker", stall[0], [SUP], until=stall[1]), errors=errors
    )
    assert (duplicate.reason is not None) is explained


def test_the_duplicate_is_the_completion_whose_success_was_not_recorded():
    # Attempt 2 waited in a stopped worker and was taken back; attempt 3 ran
    # elsewhere and its success was recorded; attempt 2 then started late.
    recorded = run(
        "c", start=8.0, done=8.1, attempt=3, chain=("301@31", "201@21", OTHER_SUP)
    )
    late = run("b", start=9.5, done=9.6, attempt=2)
    stall = event("stop_worker", 3.0, [SUP], until=9.4)
    errors = [taken_back(7.9, attempt=2)]
    [explained] = findings(
        job(recorded, late, errors=errors), events=[stall]
    ).duplicates
    [unexplained] = findings(job(recorded, late)).duplicates
    assert explained.run is late
    assert explained.kept is recorded
    assert explained.reason is not None
    assert unexplained.reason is None


@pytest.mark.parametrize(
    "events",
    [
        [],
        [event("kill_supervisor", 11.0, [OTHER_SUP])],  # another worker
        [event("kill_supervisor", 8.0, [SUP])],  # before the work row
        [event("kill_supervisor", 21.0, [SUP])],  # after the next run started
        [event("kill_supervisor", 11.0, ["100@99"])],  # its pid, another process
        [event("stop_worker", 12.0, [SUP], until=12.0 + TIMEOUT - 1)],  # too short
        [event("stop_worker", 1.0, [SUP], until=1.0 + TIMEOUT + 1)],  # before it
        [event("terminate_connections", 15.0, [OTHER_SUP])],
        [event("restart_database", 5.0, until=9.0)],
        [event("term_worker", 11.0, [SUP])],  # a graceful stop records outcomes
    ],
)
def test_anything_else_leaves_the_duplicate_unexplained(events):
    [duplicate] = twice(*events)
    assert duplicate.reason is None


def test_a_kill_after_the_job_was_taken_back_is_not_why():
    [duplicate] = twice(
        event("kill_supervisor", 15.0, [SUP]), errors=[taken_back(12.0)]
    )
    assert duplicate.reason is None


def test_a_timeout_explains_only_a_run_that_did_its_work_near_its_ttr():
    timed_out = {
        "attempt": 1,
        "exception_class_path": "django_jobs.exceptions.JobTimeout",
    }
    [late] = findings(
        job(run("a", 0.0, done=4.6), run("b", 8.0, 8.1, attempt=2), errors=[timed_out])
    ).duplicates
    [early] = twice(errors=[timed_out])
    assert late.reason is not None
    assert early.reason is None


def test_a_run_started_while_another_ran_is_an_overlap_unless_its_worker_stalled():
    first = run("a", start=0.0, done=6.0)
    second = run(
        "b", start=5.0, done=5.5, attempt=2, chain=("301@31", "201@21", OTHER_SUP)
    )
    live = findings(job(first, second))
    stalled = findings(
        job(first, second, errors=[taken_back(4.6)]),
        events=[event("stop_worker", 0.5, [SUP], until=0.5 + TIMEOUT + 1)],
    )
    assert len(live.live_overlaps()) == 1
    assert len(live.unexplained()) == 1
    assert stalled.overlaps
    assert not stalled.live_overlaps()
    assert not stalled.unexplained()


def test_a_late_start_by_a_worker_back_from_a_stall_is_excused_only_at_once():
    chain = ("301@31", "201@21", OTHER_SUP)
    elsewhere = run("a", start=0.0, done=8.0, attempt=2, chain=chain)
    stall = event("stop_worker", 0.0, [SUP], until=5.0)
    errors = [taken_back(4.5)]
    late = run("b", start=5.2, done=5.3)
    assert not findings(
        job(elsewhere, late, errors=errors), events=[stall]
    ).live_overlaps()
    long_after = run("b", start=6.9, done=7.0)
    f = findings(job(elsewhere, long_after, errors=errors), events=[stall])
    assert f.live_overlaps()


def test_a_run_killed_with_its_last_row_in_flight_is_no_overlap_to_report():
    first = run("a", start=0.0, last=3.0)
    second = run(
        "b", start=2.9, done=3.1, attempt=2, chain=("301@31", "201@21", OTHER_SUP)
    )
    killed = findings(job(first, second), events=[event("kill_child", 2.8, [CHILD])])
    alive = findings(job(first, second))
    assert not killed.live_overlaps()
    assert len(alive.live_overlaps()) == 1


def test_lost_stuck_missing_wrong_end_and_done_without_work():
    done_nothing = job(state="done")
    buried_noop = JobRecord(2, "tests.soak.tasks.noop", KINDS["noop"], "buried", 20,
                            20, 5, [], [run("c", 1.0)])  # fmt: skip
    f = findings(
        done_nothing,
        buried_noop,
        enqueued=[1, 2, 3],
        unfinished=[
            (4, "ready", "", None, None, 1),
            (5, "reserved", "w", None, None, 1),
        ],
    )
    assert f.missing() == [3]
    assert f.lost() == [4]
    assert f.stuck() == [5]
    assert [j.id for j in f.done_without_work()] == [1]
    assert [j.id for j in f.wrong_end()] == [2]


def test_exits_that_nobody_asked_for_are_unexpected(tmp_path):
    quiet, crashed = tmp_path / "quiet.log", tmp_path / "crashed.log"
    quiet.write_text("2026-01-01 00:00:00,000 INFO django_jobs.worker stopped\n")
    crashed.write_text(
        "2026-01-01 00:00:00,000 INFO django_jobs.worker stopped\n"
        "Traceback (most recent call last):\n  ...\nBrokenPipeError: [Errno 32]\n"
    )

    def gone(expected, code, log=quiet):
        return Incarnation(0, 1, "1@1", log=log, started=0, ended=1, code=code,
                           expected=expected)  # fmt: skip

    f = findings(incarnations=[gone("SIGKILL", -9), gone("SIGTERM", 0),
                               gone("SIGTERM", -15), gone(None, 1),
                               gone("SIGTERM", 1),
                               gone("fork server killed", 1),
                               gone("fork server killed", 1, crashed),
                               gone("SIGKILL", -9, crashed)])  # fmt: skip
    assert [(i.expected, i.code) for i in f.unexpected_exits()] == [
        (None, 1),
        ("SIGTERM", 1),
        ("fork server killed", 1),
    ]


def test_a_started_run_given_back_uncounted_is_a_failure_unless_at_a_sigterm():
    first = run("a", start=1.0)
    again = run("b", start=3.0, done=3.1, chain=("301@31", "201@21", OTHER_SUP))
    assert len(findings(job(first, again)).uncounted_runs()) == 1
    stopped = findings(job(first, again), events=[event("term_worker", 2.0, [SUP])])
    assert not stopped.uncounted_runs()


def test_a_worker_cut_off_before_it_started_could_not_start(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text("OperationalError: terminating connection\n")
    cut = Incarnation(0, 1, "1@1", log=log, started=0, ended=2, code=1)
    lonely = Incarnation(1, 2, "2@2", log=log, started=0, ended=2, code=1)
    f = findings(
        incarnations=[cut, lonely], events=[event("terminate_connections", 1, ["1@1"])]
    )
    assert f.refused_to_start() == [cut]
    assert f.unexpected_exits() == [lonely]


def test_a_stop_that_gave_up_outcomes_with_the_database_away_is_expected(tmp_path):
    log = tmp_path / "worker.log"
    log.write_text(
        "2026-01-01 00:00:00,000 ERROR django_jobs.worker stopping with 1 "
        "outcome(s) not recorded (the database is unavailable); their jobs "
        "stay reserved and will be rescued\n"
    )
    away = Incarnation(0, 1, "1@1", log=log, started=0, ended=2, code=1,
                       expected="SIGTERM")  # fmt: skip
    alone = Incarnation(1, 2, "2@2", log=log, started=0, ended=2, code=1,
                        expected="SIGTERM")  # fmt: skip
    f = findings(
        incarnations=[away, alone], events=[event("terminate_connections", 1, ["1@1"])]
    )
    assert f.unexpected_exits() == [alone]
    restarted = findings(incarnations=[alone], events=[event("restart_database", 1)])
    assert restarted.unexpected_exits() == []


def error(attempt, how, text=""):
    return {"attempt": attempt, "exception_class_path": f"django_jobs.exceptions.{how}",
            "traceback": f"{how}: {text}\n"}  # fmt: skip


@pytest.mark.parametrize(
    ("how", "events", "costly"),
    [
        ("NotRecorded", [], True),  # a touch the worker did not keep
        ("NotRecorded", [event("restart_database", 9.5, until=10.5)], True),
        ("ClaimLost", [], True),
        ("WorkerLost", [], False),  # taken back: the reservation lapsed
        ("ReservationExpired", [], False),
        ("JobTimeout", [], True),  # no outage, no stop: it never lapsed
        ("JobTimeout", [event("restart_database", 9.5, until=10.5)], False),
        ("JobTimeout", [event("terminate_connections", 9.5, [SUP])], False),
        ("JobTimeout", [event("terminate_connections", 9.5, [OTHER_SUP])], True),
        ("JobTimeout", [event("stop_worker", 9.0, [SUP], until=13.0)], False),
        ("ChildCrashed", [event("kill_child", 10.0, [CHILD])], False),
        ("ChildCrashed", [], True),
    ],
)
def test_a_touch_job_may_lose_an_attempt_only_if_its_reservation_lapsed(
    how, events, costly
):
    touching = job(run("a", start=9.0, last=11.0), state="buried", kind="touch",
                   errors=[error(1, how)])  # fmt: skip
    found = costly_attempts([touching], events)
    assert bool(found) is costly
    if costly:
        assert found[0].attempt == 1
        assert found[0].error.startswith(f"django_jobs.exceptions.{how}: ")


def test_the_blips_that_strike_touch_runs_are_counted():
    touching = job(run("a", start=9.0, last=11.0), kind="touch")
    napping = job(run("b", start=9.0, last=11.0), kind="nap")
    jobs = [touching, napping]
    assert runs_hit_by_blips(jobs, [event("restart_database", 10.0)]) == 1
    assert runs_hit_by_blips(jobs, [event("terminate_connections", 10, [SUP])]) == 1
    assert (
        runs_hit_by_blips(jobs, [event("terminate_connections", 10, [OTHER_SUP])]) == 0
    )
    assert runs_hit_by_blips(jobs, [event("restart_database", 20.0)]) == 0


def test_a_touch_job_done_has_its_last_checkpoint():
    rows = [
        (1, "done", 9, {"step": 8}),  # returned step 9, checkpointed 8
        (2, "done", 10, {"step": 10}),
        (3, "done", 10, {"step": 8}),  # the last one was lost
        (4, "done", 7, None),
        (5, "buried", 7, None),  # not done: nothing to say
    ]
    assert checkpoints_missing(rows) == [3, 4]
