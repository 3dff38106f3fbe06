"""The adapter interface. One subclass per peer lives in harness/adapters/peer_*.py;
adding a system (e.g. django_jobs) means adding one such file.

Two sides:
  * orchestrator side (harness/bench.py): prepare()/reset() the backend, list the
    worker `variants()`, build worker command lines, poll `done_count()`.
  * client side (harness/runner.py, a fresh subprocess per measurement): the
    enqueue_* methods. For Django-based peers the runner calls django.setup()
    *before* importing the adapter module, so module-level @task definitions
    can be guarded with `django_ready()`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
from dataclasses import dataclass, field

from . import common


@dataclass
class Variant:
    """One worker configuration."""

    name: str  # short id shown in tables, e.g. "c1", "iso-c2", "poll-0.05"
    # One argv per OS process the harness starts (e.g. 2 x db_worker for c2).
    workers: list[list[str]]
    concurrency: int = 1
    # How long an idle worker may take to notice a new job if it relies on
    # polling (seconds); 0 for push (LISTEN/NOTIFY, BRPOP). W3 spreads enqueue
    # times uniformly over this window so poll phase is sampled fairly.
    poll_interval: float = 0.0
    note: str = ""
    jobs: int | None = None  # W1/W2/W3: override the number of jobs (slow modes)
    env: dict = field(default_factory=dict)  # extra environment (client and workers)
    action: str = ""  # W1 only: "single" or "bulk"
    extra: bool = False  # secondary variant: only run with `bench.py --extra`
    # Why this variant cannot run with what is installed (e.g. a mode the
    # peer's version lacks): its runs are recorded as failed with this text.
    unavailable: str = ""


class Adapter:
    name: str = ""  # registry key, CLI name
    title: str = ""  # human name for tables
    store: str = "postgres"  # "postgres" | "redis"
    dists: list[str] = []  # distributions whose versions are reported
    has_bulk: bool = False
    fill_with_bulk: bool = True  # W2 pre-fill uses the bulk API when has_bulk
    bulk_note: str = ""  # what "bulk" means for this peer, or why there is none
    single_note: str = ""  # what one W1 enqueue does
    redis_db: int = 0  # Redis peers: a database number of their own
    # Redis peers with W2-orm variants: prepare() creates an empty PostgreSQL
    # database bench_<peer> for their jobs' ORM statements (dropped by cleanup()).
    needs_orm_db: bool = False

    # ---------------------------------------------------------------- naming
    @property
    def db(self) -> str:
        return f"bench_{self.name}"

    @property
    def template_db(self) -> str:
        return f"bench_{self.name}_tpl"

    # ---------------------------------------------------- Django integration
    def django_settings(self) -> dict | None:
        """Return a JSON-able settings dict for Django-based peers, else None."""
        return None

    def env(self) -> dict:
        """Environment for the client subprocess and for workers."""
        extra = {"BENCH_PEER": self.name}
        ds = self.django_settings()
        if ds is not None:
            extra["DJANGO_SETTINGS_MODULE"] = "harness.djsettings"
            extra["BENCH_DJANGO_SETTINGS"] = json.dumps(ds)
        return common.bench_env(extra)

    def orm_settings(self, apps: tuple = (), conn_max_age: int = 600, **extra) -> dict:
        """W2-orm settings for a peer that is not a Django app itself: the
        jobs' default database is this peer's bench_<peer>."""
        return {
            "INSTALLED_APPS": list(apps),
            "DATABASES": {"default": common.django_database(self.db, conn_max_age)},
            **extra,
        }

    @staticmethod
    def orm_env(settings: dict) -> dict:
        """Variant.env that makes the runner and the workers call django.setup()
        with `settings` (harness.djsettings reads them from the environment)."""
        return {"DJANGO_SETTINGS_MODULE": "harness.djsettings",
                "BENCH_DJANGO_SETTINGS": json.dumps(settings)}

    # ----------------------------------------------------- orchestrator side
    def install_schema(self) -> None:
        """Create the peer's tables in self.template_db (Postgres peers)."""

    def prepare(self) -> None:
        """Once per session: build a migrated template database."""
        if self.store == "postgres":
            common.recreate_db(self.template_db)
            self.install_schema()
        elif self.needs_orm_db:
            common.recreate_db(self.db)  # empty: the ORM jobs only run SELECT 1

    def reset(self) -> None:
        """Before every run: fresh database (from the template) / empty Redis db."""
        if self.store == "postgres":
            common.recreate_db(self.db, template=self.template_db)
        elif self.store == "redis":
            common.redis_client(self.redis_db).flushdb()
            extra = getattr(self, "extra_redis_dbs", [])
            for d in extra:
                common.redis_client(d).flushdb()

    def cleanup(self) -> None:
        if self.store == "postgres":
            common.drop_db(self.db)
            common.drop_db(self.template_db)
        elif self.needs_orm_db:
            common.drop_db(self.db)

    def variants(self, workload: str) -> list[Variant]:
        """workload is one of "W2", "W2-iso", "W2-orm", "W2-async", "W3"."""
        return []

    def w1_variants(self) -> list[Variant]:
        """W1 modes: one-at-a-time enqueue, plus bulk where the peer has it."""
        out = [Variant("single", [], note=self.single_note, action="single")]
        if self.has_bulk:
            out.append(Variant("bulk", [], note=self.bulk_note, action="bulk"))
        return out

    def done_count(self, expected: int, cache: dict) -> int:
        """How many jobs the backend has recorded as finished successfully.
        `cache` may hold connections between calls (same process)."""
        raise NotImplementedError

    def check_done(self, n: int) -> None:
        """After a W2 run (untimed): raise if done_count() counted failed jobs.
        Only needed where the backend records failures the way it records
        successes (Celery's result backend, django-q2's ack)."""

    def run_info(self, v: Variant, n: int) -> dict:
        """After a W2-style run (untimed): figures to add to its record, e.g.
        how many jobs ran at once; raise if the variant did not run as meant."""
        return {}

    def total_count(self, cache: dict) -> int:
        """How many jobs exist in the backend (W1 sanity check)."""
        raise NotImplementedError

    def versions(self) -> dict:
        out = {}
        for d in self.dists:
            try:
                out[d] = importlib.metadata.version(d)
            except importlib.metadata.PackageNotFoundError:
                out[d] = "not installed"
        return out

    # ----------------------------------------------------------- client side
    def client_setup(self) -> None:
        """Open connections etc. (not timed)."""

    def client_close(self) -> None:
        pass

    def enqueue_noop(self, i: int) -> None:
        """Enqueue one no-op job in its own transaction / round trip."""
        raise NotImplementedError

    def enqueue_noop_bulk(self, n: int) -> None:
        """Enqueue n no-op jobs with the peer's bulk API (has_bulk=True)."""
        raise NotImplementedError

    def enqueue_latency(self, seq: int, port: int) -> None:
        """Enqueue one job that calls common.report_start(seq, port) first."""
        raise NotImplementedError

    def enqueue_orm(self, i: int) -> None:
        """W2-orm: enqueue one job that runs common.orm_select() (SELECT 1
        through django.db.connection) in a worker where Django is set up."""
        raise NotImplementedError

    def enqueue_orm_bulk(self, n: int) -> None:
        """Enqueue n ORM jobs with the peer's bulk API (has_bulk=True)."""
        raise NotImplementedError

    def enqueue_async(self, i: int) -> None:
        """W2-async: enqueue one job that waits common.ASYNC_IO_S seconds on
        I/O (common.async_io awaited, or common.sync_io where the peer runs
        only sync functions)."""
        raise NotImplementedError

    def enqueue_async_bulk(self, n: int) -> None:
        """Enqueue n W2-async jobs with the peer's bulk API (has_bulk=True)."""
        raise NotImplementedError


def django_ready() -> bool:
    """True once django.setup() has run in this process (guards @task)."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return False
    try:
        from django.apps import apps
    except ImportError:
        return False
    return apps.ready
