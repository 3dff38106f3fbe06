"""The Claimer's decisions, without processes or a database: when to claim,
how many, who gets the jobs, and what a failed claim leaves behind.

Its children, leases, health, shutdown, registry and ``queue`` are fakes; a
"job" is a number.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from django.db import OperationalError, ProgrammingError

from django_jobs.worker import claiming as claiming_module
from django_jobs.worker.claiming import DB_RETRY_DELAY, FAST_POLL, Claimer
from tests.unit.fakes import Fake

POLL, LISTEN_POLL = 1.0, 30.0
DROPPED = OperationalError("server closed the connection unexpectedly")
REFUSED = ProgrammingError('relation "django_jobs_job" does not exist')


class J(int):
    """A job as the claimer sees it: its number is its id."""

    @property
    def pk(self) -> int:
        return int(self)


class Taker:
    """A child as the claimer sees it: the jobs it holds."""

    def __init__(self, *jobs: int) -> None:
        self.jobs = [J(job) for job in jobs]


class Pool:
    """Children with no budget: each takes up to a portion at a time."""

    def __init__(self, *takers: Taker, forks: int = 99) -> None:
        self.takers = list(takers)
        self.given: list[tuple[Taker, list]] = []
        self.forks_left = forks

    def __iter__(self):
        return iter(list(self.takers))

    @property
    def busy(self) -> list[Taker]:
        return [taker for taker in self.takers if taker.jobs]

    def room(self, of: Taker, portion: int) -> int:
        return max(0, portion - len(of.jobs))

    def dispatch(self, to: Taker, jobs: list) -> None:
        to.jobs.extend(jobs)
        self.given.append((to, list(jobs)))

    def active_count(self) -> int:
        return len(self.takers)

    def fork(self) -> bool:
        if not self.forks_left:
            return False
        self.forks_left -= 1
        self.takers.append(Taker())
        return True


class Queue:
    """``django_jobs.queue`` as the claimer calls it."""

    def __init__(self, ready: int = 0) -> None:
        self.ready = [J(n) for n in range(1, ready + 1)]
        self.claims: list[dict] = []
        self.tokens = 0
        #: What the next claim raises, once.
        self.fails: Exception | None = None
        self.released: list[list[str]] = []
        self.release_fails: Exception | None = None

    def new_claim_token(self) -> str:
        self.tokens += 1
        return f"token-{self.tokens}"

    def claim(self, *, limit: int, **kwargs) -> list[int]:
        self.claims.append({"limit": limit, **kwargs})
        if self.fails is not None:
            failure, self.fails = self.fails, None
            raise failure
        taken, self.ready = self.ready[:limit], self.ready[limit:]
        return taken

    def release_claim(self, tokens: list[str], worker_id: str, *, using: str):
        self.released.append(list(tokens))
        if self.release_fails is not None:
            raise self.release_fails
        return [101, 102]


class Connection:
    vendor = "sqlite"  # polls, and claims without asking first (MariaDB asks)

    def __init__(self, open_: bool = True) -> None:
        self.connection = object() if open_ else None
        self.closed = 0

    def close(self) -> None:
        self.closed += 1
        self.connection = None


def options(**changed):
    values = {
        "db": "default",
        "queues": (),
        "max_jobs": 0,
        "concurrency": 2,
        "burst": False,
        "poll_interval": POLL,
        "config": SimpleNamespace(LISTEN_POLL_INTERVAL=LISTEN_POLL, ASYNC_QUEUES={}),
        "backend": SimpleNamespace(alias="default"),
        "lane": 0,
        "skipped_queues": (),
    }
    return SimpleNamespace(**{**values, **changed})


@pytest.fixture
def world(monkeypatch):
    """A claimer with two idle children, whose queue holds five ready jobs."""
    made = SimpleNamespace(
        queue=Queue(ready=5),
        connection=Connection(),
        pool=Pool(Taker(), Taker()),
        portion=Fake(size=1),
        leases=Fake(),
        health=Fake(),
        shutdown=SimpleNamespace(draining=False),
        registry=Fake(claim_writes_room=True),
        listening=False,
    )
    made.registry.limited_queues = ()
    made.given_back = []
    monkeypatch.setattr(claiming_module, "queue", made.queue)
    monkeypatch.setattr(claiming_module, "connections", {"default": made.connection})

    def claimer(**changed) -> Claimer:
        made.claimer = Claimer(
            options(**changed),
            "w1",
            children=made.pool,
            portions=made.portion,
            leases=made.leases,
            health=made.health,
            shutdown=made.shutdown,
            registry=made.registry,
            listening=lambda: made.listening,
            give_back=lambda job, why: made.given_back.append((job, why)),
        )
        return made.claimer

    made.make = claimer
    return made


# When and how many


def test_it_claims_as_many_as_the_idle_children_take_and_hands_them_out(world):
    claimer = world.make()
    first, second = world.pool.takers
    claimer.claim(clock=10.0)
    assert [claim["limit"] for claim in world.queue.claims] == [2]
    assert world.pool.given == [(first, [1]), (second, [2])]
    assert world.leases.args("expect") == [([1],), ([2],)]
    assert claimer.claimed_total == 2
    assert claimer.wake, "a full claim: there may be more, claim again"
    assert world.registry.args("claimed") == [(0, True)]  # no room left


def test_a_short_claim_waits_for_a_wake_up_or_the_poll(world):
    world.queue.ready = [J(1)]
    claimer = world.make()
    claimer.claim(clock=10.0)
    assert claimer.claimed_total == 1
    assert not claimer.wake
    # Jobs were found: more may follow, and nothing can wake a worker that
    # does not listen, so it looks again soon.
    assert claimer.next_poll == 10.0 + FAST_POLL
    assert world.registry.args("claimed") == [(1, True)]

    claimer.claim(clock=10.0 + FAST_POLL / 2)  # neither woken nor due: no statement
    assert len(world.queue.claims) == 1
    assert claimer.wake_at(10.01) == 10.0 + FAST_POLL

    claimer.claim(clock=10.0 + FAST_POLL)  # the poll, which finds nothing
    assert len(world.queue.claims) == 2


def test_a_worker_that_cannot_listen_backs_off_to_the_poll_interval(world):
    world.queue.ready = [J(1)]
    claimer = world.make()
    clock, waits = 10.0, []
    for _ in range(8):
        claimer.claim(clock=clock)
        waits.append(round(claimer.next_poll - clock, 3))
        clock = claimer.next_poll
    # Found a job, then empty claims: each wait doubles, up to --poll-interval.
    assert waits == [0.05, 0.1, 0.2, 0.4, 0.8, POLL, POLL, POLL]
    assert len(world.queue.claims) == 8


def test_a_listening_worker_polls_rarely_and_is_woken_by_its_queues(world):
    world.queue.ready = []
    world.listening = True
    claimer = world.make(queues=("mail",))
    claimer.claim(clock=0.0)
    assert claimer.next_poll == LISTEN_POLL

    claimer.on_notify(["reports"])
    assert claimer.wake_at(1.0) == LISTEN_POLL, "not a queue it serves"
    claimer.on_notify(["reports", "mail"])
    assert claimer.wake_at(1.0) == 1.0


def test_a_worker_of_every_queue_is_woken_by_any(world):
    claimer = world.make()
    claimer.wake = False
    claimer.on_notify(["anything"])
    assert claimer.wake


def test_a_busy_child_takes_no_slot_and_spares_wait_for_one(world):
    world.pool = Pool(Taker(7), Taker(), Taker())
    claimer = world.make(concurrency=2)
    # The busy child has no room (portion 1); one slot is free: one spare.
    assert list(claimer.rooms().values()) == [1]
    assert claimer.room() == 1


def test_a_busy_child_is_topped_up_only_by_half_a_portion_or_more(world):
    world.portion.returns["size"] = 4
    world.pool = Pool(Taker(7, 8), Taker(9, 10, 11))
    claimer = world.make(concurrency=2)
    rooms = claimer.rooms()
    assert [len(taker.jobs) for taker in rooms] == [2]  # room 2 of 4; not 1 of 4
    assert list(rooms.values()) == [2]


def test_idle_children_are_served_first(world):
    world.portion.returns["size"] = 4
    world.pool = Pool(Taker(7, 8), Taker())
    claimer = world.make(concurrency=2)
    busy, idle = world.pool.takers
    claimer.claim(clock=0.0)  # 2 + 4 asked; 5 ready
    assert world.pool.given == [(idle, [1, 2, 3, 4]), (busy, [5])]


def test_a_job_claimed_again_while_its_old_run_is_in_hand_is_given_back(world):
    # Job 2's claim was lost while this worker was stopped; its old run is
    # still being stopped in a child when the worker claims it again.
    world.pool = Pool(Taker(2), Taker())
    world.queue.ready = [J(1), J(2), J(3)]
    claimer = world.make(concurrency=2)
    world.portion.returns["size"] = 4
    claimer.claim(clock=0.0)
    ((back, why),) = world.given_back
    assert back == 2
    assert "has not ended here yet" in why
    assert [job for _, given in world.pool.given for job in given] == [1, 3]
    assert claimer.claimed_total == 2


def test_max_jobs_bounds_the_claim_and_ends_the_worker(world):
    claimer = world.make(max_jobs=3, concurrency=4)
    world.pool = claimer.children = Pool(*(Taker() for _ in range(4)))
    claimer.claim(clock=0.0)
    assert world.queue.claims[0]["limit"] == 3
    assert claimer.done()
    assert not claimer.may_claim()
    assert claimer.room() == 0
    assert claimer.wake_at(0.0) is None


def test_a_draining_worker_claims_nothing(world):
    world.shutdown.draining = True
    claimer = world.make()
    assert claimer.wake_at(0.0) is None
    assert claimer.room() == 0


def test_burst_ends_when_a_claim_finds_nothing_and_nothing_runs(world):
    world.queue.ready = []
    claimer = world.make(burst=True)
    claimer.claim(clock=0.0)
    assert claimer.idle_and_empty
    assert claimer.done()


def test_refill_forks_one_child_per_slot_until_the_zygote_fails(world):
    world.pool = Pool(forks=1)
    claimer = world.make(concurrency=3)
    claimer.refill()
    assert len(world.pool.takers) == 1  # the second fork failed: it stops there
    world.pool.forks_left = 9
    claimer.refill()
    assert len(world.pool.takers) == 3


# A claim that fails


def test_a_claim_that_failed_on_an_open_connection_is_in_doubt(world):
    world.queue.fails = DROPPED
    claimer = world.make()
    claimer.claim(clock=5.0)
    assert world.health.args("failed") == [(DROPPED, "claim jobs")]
    assert claimer.in_doubt == ["token-1"]
    assert not claimer.wake
    assert claimer.next_poll == 5.0 + DB_RETRY_DELAY
    assert world.pool.given == []


def test_claims_in_doubt_are_given_back_before_the_next_claim(world, caplog):
    world.queue.fails = DROPPED
    claimer = world.make()
    claimer.claim(clock=0.0)
    with caplog.at_level(logging.INFO, logger="django_jobs.worker"):
        claimer.claim(clock=DB_RETRY_DELAY)
    assert world.queue.released == [["token-1"]]
    assert claimer.in_doubt == []
    assert "given back, their attempts not counted" in caplog.text
    assert "101, 102" in caplog.text
    assert len(world.queue.claims) == 2  # then it claimed
    assert world.queue.claims[1]["token"] == "token-2"


def test_a_claim_that_never_reached_the_server_is_not_in_doubt(world):
    world.connection.connection = None  # connecting failed
    world.queue.fails = DROPPED
    claimer = world.make()
    claimer.claim(clock=0.0)
    assert claimer.in_doubt == []


def test_a_refused_claim_is_logged_and_its_connection_closed(world, caplog):
    world.queue.fails = REFUSED
    claimer = world.make()
    with caplog.at_level(logging.ERROR, logger="django_jobs.worker"):
        claimer.claim(clock=0.0)
    assert "cannot claim jobs; will try again" in caplog.text
    assert world.health.args("failed") == []
    assert world.connection.closed == 1
    assert claimer.in_doubt == ["token-1"]  # it may have been committed
    assert claimer.next_poll == DB_RETRY_DELAY


def test_no_claim_while_claims_in_doubt_cannot_be_given_back(world):
    claimer = world.make()
    claimer.in_doubt = ["token-0"]
    world.queue.release_fails = DROPPED
    claimer.claim(clock=0.0)
    assert world.queue.claims == []
    assert claimer.in_doubt == ["token-0"], "kept for the next try"
    assert world.health.args("failed") == [(DROPPED, "give back a claim in doubt")]
    assert claimer.next_poll == DB_RETRY_DELAY


def test_a_refused_give_back_is_left_to_the_rescuer_and_claiming_goes_on(world, caplog):
    claimer = world.make()
    claimer.in_doubt = ["token-0"]
    world.queue.release_fails = REFUSED
    with caplog.at_level(logging.WARNING, logger="django_jobs.worker"):
        claimer.claim(clock=0.0)
    assert "rescued once their reservation runs out" in caplog.text
    assert claimer.in_doubt == []
    assert len(world.queue.claims) == 1


def test_a_room_that_cannot_be_written_waits_for_the_heartbeat(world):

    def claimed(room: int, written: bool) -> None:
        raise DROPPED

    world.registry.returns["claimed"] = claimed
    claimer = world.make()
    claimer.claim(clock=0.0)
    assert claimer.claimed_total == 2, "the jobs were handed out first"
    assert world.health.args("failed") == [(DROPPED, "write its room")]
