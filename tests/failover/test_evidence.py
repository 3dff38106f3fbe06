"""The failover run's evidence is read right (fast: no servers, no workers)."""

from tests.failover.evidence import analyse, read_log

LOG = """\
2026-12-06 04:05:22,723 INFO django_jobs.worker django-jobs worker w1 started
2026-12-06 04:05:30,981 WARNING django_jobs.worker database 'default' unavailable \
(connection failed); outcomes wait and no job is claimed until it is back
2026-12-06 04:05:30,982 WARNING django_jobs.worker lost the LISTEN connection (gone
\tThis probably means the server terminated abnormally); polling meanwhile
2026-12-06 04:05:32,523 INFO django_jobs.worker database 'default' back after 1.6 s
2026-12-06 04:05:32,546 ERROR django_jobs.job job 107 t.quick (attempt 1/3): \
finished, but Cannot complete job 107: this claim on it was lost
2026-12-06 04:05:33,000 WARNING django_jobs.job job 9 t.flaky (attempt 1/3): failed
"""


def test_a_worker_log_gives_its_database_lines_warnings_and_job_errors(tmp_path):
    log = tmp_path / "worker-0.log"
    log.write_text(LOG + "Traceback (most recent call last):\n  boom\n")
    read = read_log(str(log))
    assert len(read["unavailable"]) == 1
    assert read["back"] == ["database 'default' back after 1.6 s"]
    assert len(read["back_at"]) == 1
    assert read["tracebacks"] == 1
    assert len(read["worker_warnings"]) == 2  # the job's own warning is not one
    assert read["job_errors"] == [
        "job 107 t.quick (attempt 1/3): finished, but Cannot complete job 107: "
        "this claim on it was lost"
    ]


def test_jobs_are_told_apart_by_key_and_their_runs_counted(tmp_path):
    log = tmp_path / "worker-0.log"
    log.write_text(LOG)
    evidence = {
        "config": {"synchronous": False, "hold": 3.0},
        # Keys 1 and 2 before the hold, 3 during it; 3's id was given again to
        # key 4 by the promoted server.
        "acked": {
            "1": {"id": 1, "kind": "quick", "at": 10.0},
            "2": {"id": 2, "kind": "doomed", "at": 10.0},
            "3": {"id": 3, "kind": "quick", "at": 21.0},
            "4": {"id": 3, "kind": "quick", "at": 30.0},
        },
        "rows": [
            [1, "tests.failover.tasks.quick", "done", 2, [1], 25.0],
            [2, "tests.failover.tasks.doomed", "done", 1, [2], 26.0],
            [3, "tests.failover.tasks.quick", "done", 1, [4], 31.0],
        ],
        "marks": [
            "1.1.1.ran.10",
            "1.1.1.done.10",
            "1.1.2.ran.11",
            "1.1.2.done.11",
            "2.2.1.ran.12",
            "2.2.1.failed.12",
            "3.3.1.ran.13",
            "3.3.1.done.13",
        ],
        "held_at": 20.0,
        "stopped_at": 23.0,
        "promoted_at": 24.0,
        "wal_bytes_behind": 1000,
        "settled_at": 40.0,
        "listening_again": True,
        "running_at_end": 2,
        "worker_codes": [0],
        "enqueue_failures": [],
        "worker_logs": [str(log)],
    }
    figures = analyse(evidence)
    assert figures["lost"] == [3]
    assert figures["lost_before_hold"] == []
    assert figures["wrong_end"] == [2]
    assert figures["never_ran"] == [4]
    assert figures["completed_twice"] == [1]
    assert figures["ran_more_than_planned"] == [1]
    assert figures["extra_attempts"] == [1]
    assert figures["first_finish_after_promotion"] == 1.0
    assert figures["settled_after_promotion"] == 16.0


def test_the_driver_knows_a_listener_by_the_workers_own_lock():
    from django_jobs.queue import wake
    from tests.failover import driver

    assert driver.LISTENER_LOCK == wake.LISTENER_LOCK
