"""django_jobs (the project under test): PostgreSQL, `manage.py runworker`.

Contract: DESIGN.md (beside this folder). Jobs are rows of
`django_jobs.models.Job`; a supervisor claims them in short transactions and
runs each job in a child process of its own (`--jobs-per-child 1`, the
default), forked from a warm parent; idle workers wake on LISTEN/NOTIFY, with
`--poll-interval` as the safety net. Tasks are plain `django.tasks` tasks
(`@task`, `.enqueue()`) on `django_jobs.backend.JobsBackend`.
Done = a Job row with state 'done'.

Install: prepare() runs `pip install -e $DJANGO_JOBS_DIR` into the bench venv
(DJANGO_JOBS_DIR defaults to $PROJECT_DIR, which defaults to "."; a relative
path is taken from bench/peers/, and if that folder is not itself a checkout
its parents are searched for one: a folder with pyproject.toml/setup.py and a
django_jobs/ (or src/django_jobs/) package). It is skipped when django_jobs is
already importable from that checkout (BENCH_DJANGO_JOBS_REINSTALL=1 forces
it). The peers' pinned versions (requirements.txt, extras stripped) are passed
as pip constraints so the install cannot move Django or psycopg under the
other peers. With no checkout and no installed django_jobs, prepare() raises
a one-line error and bench.py skips this peer ("SKIP django_jobs: prepare
failed: ..."); the other peers run as usual.

Bulk: the API's name is not fixed yet. prepare() (for W1's variant list) and
client_setup() (for the W2 pre-fill) look for `django_jobs.queue.enqueue_many`,
then any other callable in django_jobs.queue whose name contains "bulk" or
ends in "_many", then such a method on the task object and on the backend.
None found = "bulk" is reported as unsupported and W2 is pre-filled with
single enqueues. The call shape is also unknown: the W1 warm-up call tries a
few shapes inside a savepoint (task + [(args, kwargs)], task + [args],
[(task, args, kwargs)], [args] / [(args, kwargs)] for a task method) and keeps
the first that inserts exactly the requested number of rows; the timed call
uses that shape.

Variants (all `--concurrency N` explicit; default would be the CPU count):
  W2      c1, c2 (`--burst`, default one process per job) and c2-jpc100
          (`--jobs-per-child 100`, a child runs up to 100 jobs in turn).
  W2-iso  c1, c2: the very same commands as W2 c1/c2, because one process
          per job is django_jobs' default mode; listed again so the W2-iso
          table compares it with RQ's fork-per-job, Celery max-tasks-per-child=1 etc.
  W2-orm  c2 (one process per job: each child opens its own PostgreSQL
          connection for the job's SELECT 1) and c2-jpc100 (a child keeps
          its connection for up to 100 jobs, CONN_MAX_AGE=600).
  W2-async  an `async def` task awaiting common.async_io (100 ms):
          c2 (`--queue default --concurrency 2`, a child process per job,
          which runs the coroutine with async_to_sync), c2-jpc100 (the same
          with `--jobs-per-child 100`: still one job at a time per child) and
          lane-k100-c2, the async lane of issue 23: the same task enqueued
          with .using(queue_name="crawl"), with OPTIONS["ASYNC_QUEUES"] = {"crawl": 100}
          in this variant's settings, `runworker --queue crawl --concurrency 2
          --async-concurrency 100` (2 children, up to 100 jobs at once in
          each). prepare()'s probe looks for the lane (OPTIONS has
          ASYNC_QUEUES, django_jobs.worker.lane exists, runworker has
          --async-concurrency); without it the variant is recorded as failed
          with "lane not available: ...". After a run, run_info() counts the
          most jobs in flight at once (claimed to done: started_at to
          finished_at of the rows); a lane run with no more than 2 fails as
          "lane not in effect".
  W3      default (LISTEN/NOTIFY) and poll-0.05 (`--poll-interval 0.05`),
          both `--concurrency 1` like the other peers' W3 workers. W3 runs
          without `--burst` (a burst worker would exit as soon as it is idle,
          which the harness reports as "worker exited early"). Whether
          poll-0.05 really polls depends on the worker having no LISTEN then;
          as specified, LISTEN stays on and the poll is only the safety net.

Fairness note: the no-op and ORM tasks live in this module
(harness.adapters.peer_django_jobs), so a child that has not inherited it
imports the harness package (harness/adapters/__init__.py, harness/base.py:
importlib.metadata, dataclasses) on its first job; a worker that preloads
task modules into its fork parent does not pay that per child.

CONN_MAX_AGE=600 as for the other Django peers.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

from .. import common
from ..base import Adapter as BaseAdapter
from ..base import Variant, django_ready

LANE_QUEUE = "crawl"  # W2-async: the async lane's queue (OPTIONS["ASYNC_QUEUES"])
LANE_K = 100  # jobs at once per lane child

if django_ready():  # only inside processes where django.setup() has run
    from django.tasks import task

    @task
    def dj_noop():
        return 1

    @task
    def dj_lat(seq, port):
        common.report_start(seq, port)  # W3 start signal, first thing in the job
        return 1

    @task
    def dj_orm():  # W2-orm: SELECT 1 through django.db.connection
        return common.orm_select()

    @task
    async def dj_async():  # W2-async: 100 ms awaited (the lane: .using(queue_name=LANE_QUEUE))
        return await common.async_io()


DEFAULT_TABLE = "django_jobs_job"
DEFAULT_DONE = "done"

# Printed by the probe subprocess (django.setup() done): where the app lives,
# the Job table, the 'done' value, and the bulk API found (if any).
_PROBE = r"""
import json, django
django.setup()
import django_jobs
from django_jobs.models import Job
from harness.adapters import peer_django_jobs as m
done = m._done_value()
bulk = m._find_bulk(m.dj_noop)
print("PROBE " + json.dumps({
    "lane": m._lane_missing(),
    "origin": getattr(django_jobs, "__file__", None),
    "table": Job._meta.db_table,
    "state_column": Job._meta.get_field("state").column,
    "done": done,
    "bulk": bulk[0] if bulk else None,
}))
"""


# ---------------------------------------------------------------- helpers
def _done_value() -> str:
    """The stored value of the 'done' state (DESIGN: 'done')."""
    try:
        from django_jobs import states
    except ImportError:
        return DEFAULT_DONE
    v = getattr(states, "DONE", None)
    v = getattr(v, "value", v)
    return v if isinstance(v, str) and v else DEFAULT_DONE


def _lane_missing() -> str:
    """Why this django_jobs has no async lane (issue 23), or "" (probe)."""
    import importlib.util

    from django_jobs.conf import JobsOptions
    from django_jobs.management.commands.runworker import Command

    if "ASYNC_QUEUES" not in JobsOptions.__dataclass_fields__:
        return "OPTIONS has no ASYNC_QUEUES"
    if importlib.util.find_spec("django_jobs.worker.lane") is None:
        return "no django_jobs.worker.lane (the worker side)"
    parser = Command().create_parser("django", "runworker")
    if "--async-concurrency" not in parser._option_string_actions:
        return "runworker has no --async-concurrency"
    return ""


def _bulkish(name: str) -> bool:
    n = name.lower()
    return not n.startswith("_") and ("bulk" in n or (n.endswith("_many") and "enqueue" in n))


def _find_bulk(t) -> tuple[str, object, str] | None:
    """(label, callable, kind) of the bulk enqueue API, or None.
    kind: "module" (takes the task), "method" (bound to the task), "backend"."""
    try:
        from django_jobs import queue as q
    except ImportError:
        q = None
    if q is not None:
        fn = getattr(q, "enqueue_many", None)
        if callable(fn):
            return ("django_jobs.queue.enqueue_many", fn, "module")
        for name in sorted(dir(q)):
            obj = getattr(q, name, None)
            if _bulkish(name) and callable(obj) and getattr(obj, "__module__", "") == q.__name__:
                return (f"django_jobs.queue.{name}", obj, "module")
    for name in sorted(dir(type(t))):
        if _bulkish(name) and callable(getattr(t, name, None)):
            return (f"Task.{name}", getattr(t, name), "method")
    try:
        from django.tasks import task_backends

        backend = task_backends["default"]
    except Exception:
        backend = None
    if backend is not None:
        for name in sorted(dir(type(backend))):
            if _bulkish(name) and callable(getattr(backend, name, None)):
                return (f"JobsBackend.{name}", getattr(backend, name), "module")
    return None


def _shapes(kind: str, t, n: int) -> list[tuple[str, tuple]]:
    """Candidate call shapes for n no-argument jobs of task t."""
    if kind == "method":
        return [
            ("[(args, kwargs)]", ([((), {})] * n,)),
            ("[args]", ([()] * n,)),
            ("n", (n,)),
        ]
    return [
        ("task, [(args, kwargs)]", (t, [((), {})] * n)),
        ("task, [args]", (t, [()] * n)),
        ("[(task, args, kwargs)]", ([(t, (), {})] * n,)),
        ("[(task, args)]", ([(t, ())] * n,)),
    ]


def _is_checkout(d: Path) -> bool:
    has_pkg = (d / "django_jobs" / "__init__.py").is_file() or (d / "src" / "django_jobs" / "__init__.py").is_file()
    has_build = any((d / f).is_file() for f in ("pyproject.toml", "setup.py", "setup.cfg"))
    return has_pkg and has_build


def _checkout_dir() -> tuple[Path, Path | None]:
    """(the directory asked for, the checkout found there or above it)."""
    raw = os.environ.get("DJANGO_JOBS_DIR") or os.environ.get("PROJECT_DIR") or "."
    asked = Path(raw).expanduser()
    if not asked.is_absolute():
        asked = common.BENCH_DIR / asked
    asked = asked.resolve()
    for d in (asked, *asked.parents):
        if _is_checkout(d):
            return asked, d
    return asked, None


def _installed_origin() -> Path | None:
    """Where `import django_jobs` would come from in this venv (no import)."""
    importlib.invalidate_caches()
    try:
        spec = importlib.util.find_spec("django_jobs")
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.origin and spec.origin not in ("namespace", "built-in"):
        return Path(spec.origin).resolve().parent
    locs = list(spec.submodule_search_locations or [])
    return Path(locs[0]).resolve() if locs else None


def _constraints_file() -> Path:
    """requirements.txt without extras: pins for the shared venv."""
    out = Path("/tmp/peers/django_jobs-constraints.txt")
    out.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for line in (common.BENCH_DIR / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if "[" in line and "]" in line:
            line = line[: line.index("[")] + line[line.index("]") + 1:]
        lines.append(line)
    out.write_text("\n".join(lines) + "\n")
    return out


class Adapter(BaseAdapter):
    name = "django_jobs"
    title = "django_jobs"
    store = "postgres"
    dists = ["django-jobs", "Django", "psycopg"]
    has_bulk = False  # set by prepare() / client_setup() once the API is probed
    bulk_note = "no bulk API found (looked for django_jobs.queue.enqueue_many / *bulk*)"
    single_note = "Task.enqueue() under autocommit = 1 INSERT (+ NOTIFY)"

    def __init__(self) -> None:
        if os.environ.get("BENCH_DJANGO_JOBS_PRELOAD") == "1":
            self.title = "django_jobs (task module preloaded)"
        self.table = DEFAULT_TABLE
        self.state_column = "state"
        self.done_value = DEFAULT_DONE
        self._bulk = None  # (label, callable, kind), client side
        self.lane_missing = "not probed"  # set by prepare()
        self._shape = None  # index into _shapes(), found on the warm-up call

    # ---------------------------------------------------------- settings
    def django_settings(self, db: str | None = None, conn_max_age: int = 600,
                        lane: bool = False) -> dict:
        apps = ["django_jobs"]
        if os.environ.get("BENCH_DJANGO_JOBS_PRELOAD") == "1":
            apps.append("harness.djj_preload")  # the fork server imports the tasks
        return {
            "INSTALLED_APPS": apps,
            "DATABASES": {
                "default": {
                    "ENGINE": "django.db.backends.postgresql",
                    "NAME": db or self.db,
                    "HOST": common.PG_HOST,
                    "PORT": common.PG_PORT,
                    "USER": common.PG_USER,
                    "CONN_MAX_AGE": conn_max_age,
                }
            },
            "TASKS": {"default": {
                "BACKEND": "django_jobs.backend.JobsBackend",
                **({"QUEUES": ["default", LANE_QUEUE],
                    "OPTIONS": {"ASYNC_QUEUES": {LANE_QUEUE: LANE_K}}} if lane else {}),
            }},
        }

    def _env_for(self, db: str) -> dict:
        env = self.env()
        env["BENCH_DJANGO_SETTINGS"] = json.dumps(self.django_settings(db))
        return env

    # ------------------------------------------------------ orchestrator
    def _ensure_installed(self) -> None:
        asked, checkout = _checkout_dir()
        origin = _installed_origin()
        if checkout is None:
            if origin is not None:
                return  # installed some other way; use it as is
            raise RuntimeError(
                f"django_jobs is not importable and {asked} (DJANGO_JOBS_DIR / PROJECT_DIR, "
                f"or a parent) is not a django_jobs checkout; set PROJECT_DIR=<checkout>"
            )
        force = os.environ.get("BENCH_DJANGO_JOBS_REINSTALL") == "1"
        if origin is not None and not force and checkout in (origin, *origin.parents):
            return  # already an (editable) install of this checkout
        r = subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "-e", str(checkout),
             "-c", str(_constraints_file())],
            cwd=str(common.BENCH_DIR), capture_output=True, text=True, timeout=600,
        )
        if r.returncode != 0:
            raise RuntimeError(f"pip install -e {checkout} failed: {(r.stderr or r.stdout)[-800:]}")

    def _probe(self) -> dict:
        r = subprocess.run(
            [sys.executable, "-c", _PROBE], env=self._env_for(self.template_db),
            cwd=str(common.BENCH_DIR), capture_output=True, text=True, timeout=120,
        )
        for line in reversed(r.stdout.splitlines()):
            if line.startswith("PROBE "):
                return json.loads(line[len("PROBE "):])
        raise RuntimeError(f"django_jobs probe failed rc={r.returncode}: {(r.stderr or r.stdout)[-800:]}")

    def prepare(self) -> None:
        self._ensure_installed()  # before any database exists: a skip leaves nothing behind
        try:
            super().prepare()  # template database + install_schema()
            info = self._probe()
        except Exception:
            try:
                common.drop_db(self.template_db)
            except Exception:
                pass
            raise
        self.table = info["table"]
        self.state_column = info["state_column"]
        self.done_value = info["done"]
        self.has_bulk = bool(info["bulk"])
        self.lane_missing = info["lane"]
        if self.has_bulk:
            self.bulk_note = f"{info['bulk']} for n jobs, one call"

    def install_schema(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "django", "migrate", "--noinput", "-v", "0"],
            env=self._env_for(self.template_db),
            cwd=str(common.BENCH_DIR),
            check=True,
            timeout=120,
        )

    def _worker(self, concurrency: int, *extra: str, burst: bool = True) -> list[str]:
        argv = [sys.executable, "-m", "django", "runworker", "--concurrency", str(concurrency)]
        if burst:
            argv.append("--burst")
        return argv + list(extra)

    def variants(self, workload: str) -> list[Variant]:
        if workload == "W2":
            return [
                Variant("c1", [self._worker(1)], 1, 0,
                        "1 runworker --burst --concurrency 1 (process per job, the default)"),
                Variant("c2", [self._worker(2)], 2, 0,
                        "1 runworker --burst --concurrency 2 (process per job, the default)"),
                Variant("c2-jpc100", [self._worker(2, "--jobs-per-child", "100")], 2, 0,
                        "1 runworker --burst --concurrency 2 --jobs-per-child 100"),
            ]
        if workload == "W2-iso":  # same commands as W2 c1/c2: isolation is the default
            return [
                Variant("c1", [self._worker(1)], 1, 0, "--concurrency 1, a child process per job (default)"),
                Variant("c2", [self._worker(2)], 2, 0, "--concurrency 2, a child process per job (default)"),
            ]
        if workload == "W2-orm":
            return [
                Variant("c2", [self._worker(2)], 2, 0,
                        "1 runworker --burst --concurrency 2 (process per job, the default)"),
                Variant("c2-jpc100", [self._worker(2, "--jobs-per-child", "100")], 2, 0,
                        "1 runworker --burst --concurrency 2 --jobs-per-child 100"),
            ]
        if workload == "W2-async":
            lane_env = {}
            if not self.lane_missing:
                lane_env = {"BENCH_DJANGO_SETTINGS": json.dumps(self.django_settings(lane=True))}
            lane = self._worker(2, "--queue", LANE_QUEUE, "--async-concurrency", str(LANE_K))
            return [
                Variant("c2", [self._worker(2, "--queue", "default")], 2, 0,
                        "1 runworker --burst --queue default --concurrency 2 (process per job; async_to_sync in the child)"),
                Variant("c2-jpc100", [self._worker(2, "--queue", "default", "--jobs-per-child", "100")], 2, 0,
                        "1 runworker --burst --queue default --concurrency 2 --jobs-per-child 100 (one job at a time per child)"),
                Variant(f"lane-k{LANE_K}-c2", [lane], 2 * LANE_K, 0,
                        f"1 runworker --burst --queue {LANE_QUEUE} --concurrency 2 --async-concurrency {LANE_K}: "
                        f"async lane, 2 children x {LANE_K} jobs at once",
                        env=lane_env,
                        unavailable=f"lane not available: {self.lane_missing}" if self.lane_missing else ""),
            ]
        if workload == "W3":
            return [
                Variant("default", [self._worker(1, burst=False)], 1, 0,
                        "--concurrency 1, LISTEN/NOTIFY (default), child per job"),
                Variant("poll-0.05", [self._worker(1, "--poll-interval", "0.05", burst=False)], 1, 0.05,
                        "--concurrency 1 --poll-interval 0.05 (LISTEN stays on unless the worker drops it)"),
            ]
        return []

    def done_count(self, expected: int, cache: dict) -> int:
        return common.pg_scalar(
            self.db,
            f'SELECT count(*) FROM "{self.table}" WHERE "{self.state_column}" = '
            + "'" + self.done_value.replace("'", "''") + "'",
            cache,
        )

    def total_count(self, cache: dict) -> int:
        return common.pg_scalar(self.db, f'SELECT count(*) FROM "{self.table}"', cache)

    def run_info(self, v: Variant, n: int) -> dict:
        """Most jobs in flight at once: claimed (started_at, set by the
        claim) to done (finished_at)."""
        peak = common.pg_scalar(
            self.db,
            "SELECT coalesce(max(running), 0) FROM (SELECT sum(step) OVER (ORDER BY at, step) AS running"
            " FROM (SELECT started_at AS at, 1 AS step FROM django_jobs_job WHERE state = 'done'"
            " UNION ALL SELECT finished_at, -1 FROM django_jobs_job WHERE state = 'done') e) r",
        )
        if v.name.startswith("lane-") and peak <= 2:
            raise RuntimeError(f"lane not in effect: at most {peak} jobs in flight")
        return {"peak_in_flight": int(peak)}

    # ------------------------------------------------------- client side
    def client_setup(self) -> None:
        from django_jobs.models import Job

        self.table = Job._meta.db_table
        self.state_column = Job._meta.get_field("state").column
        self.done_value = _done_value()
        self._bulk = _find_bulk(dj_noop)
        self.has_bulk = self._bulk is not None  # the runner's W2 fill reads this

    def client_close(self) -> None:
        from django.db import connections

        connections.close_all()

    def enqueue_noop(self, i: int) -> None:
        dj_noop.enqueue()

    def enqueue_noop_bulk(self, n: int) -> None:
        self._enqueue_bulk(dj_noop, n)

    def enqueue_orm(self, i: int) -> None:
        dj_orm.enqueue()

    def enqueue_orm_bulk(self, n: int) -> None:
        self._enqueue_bulk(dj_orm, n)

    def _enqueue_bulk(self, t, n: int) -> None:
        """n jobs of task t (no arguments) in one call of the bulk API."""
        if self._bulk is None:
            raise RuntimeError("django_jobs has no bulk enqueue API (looked for queue.enqueue_many / *bulk*)")
        label, fn, kind = self._bulk
        if kind == "method":  # found on dj_noop: the same method of task t
            fn = getattr(t, label.split(".", 1)[1])
        if self._shape is not None:
            fn(*_shapes(kind, t, n)[self._shape][1])
            return
        # First call (the runner's warm-up, or W2's untimed fill): find the
        # call shape, each try in a savepoint so a wrong guess leaves nothing.
        from django.db import transaction
        from django_jobs.models import Job

        errors = []
        for outer in (True, False):  # without the savepoint only if the API insists on durable=True
            for k, (desc, args) in enumerate(_shapes(kind, t, n)):
                before = Job.objects.count()
                try:
                    with transaction.atomic() if outer else contextlib.nullcontext():
                        fn(*args)
                        added = Job.objects.count() - before
                        if added != n:
                            raise ValueError(f"inserted {added} rows, expected {n}")
                except Exception as e:
                    errors.append(f"{desc}: {e!r}"[:200])
                    if not outer and Job.objects.count() != before:
                        break  # a wrong guess wrote rows: stop, the count check will report it
                    continue
                self._shape = k
                return
            if not any("durable" in e.lower() for e in errors):
                break
        raise RuntimeError(f"could not call {label} for {n} jobs of {t.name}; tried " + "; ".join(errors))

    def enqueue_latency(self, seq: int, port: int) -> None:
        dj_lat.enqueue(seq, port)

    def _async_task(self):
        """W2-async's task: in the lane's queue when the settings have it."""
        from django.conf import settings

        options = settings.TASKS["default"].get("OPTIONS", {})
        if LANE_QUEUE in options.get("ASYNC_QUEUES", {}):
            return dj_async.using(queue_name=LANE_QUEUE)
        return dj_async

    def enqueue_async(self, i: int) -> None:
        self._async_task().enqueue()

    def enqueue_async_bulk(self, n: int) -> None:
        self._enqueue_bulk(self._async_task(), n)
