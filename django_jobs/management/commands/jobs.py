"""``manage.py jobs``: look at and act on the queue from a shell.

Thin: each subcommand parses its arguments and calls ``django_jobs.queue``
(to change jobs), ``django_jobs.stats`` (to count them) or the helpers in
``django_jobs.management`` (to show them).
"""

from __future__ import annotations

import argparse

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from django_jobs import health, queue
from django_jobs.backend import jobs_backend
from django_jobs.durations import age
from django_jobs.exceptions import InvalidTransition, JobError, UnknownQueue
from django_jobs.management import workflows
from django_jobs.management.show import job_document, job_lines
from django_jobs.management.text import (
    add_json,
    describe_progress,
    dump,
    job_summary,
    quiet_when_the_reader_leaves,
    table,
)
from django_jobs.models import Job
from django_jobs.states import State
from django_jobs.stats import DISPLAY_STATES, STATE_ALIASES, in_state

STATES = [*DISPLAY_STATES, *STATE_ALIASES]

#: Acting subcommands on job ids: (queue operation, what it did, help).
ACTIONS = {
    "bury": (queue.bury, "buried", "Set ready jobs aside (buried)."),
    "retry": (
        queue.kick,
        "retried",
        "Run buried or delayed jobs again, now (beanstalkd's kick).",
    ),
    "cancel": (queue.cancel, "cancelled", "Bury waiting jobs; stop running ones."),
    "delete": (queue.delete, "deleted", "Delete jobs that are not running."),
}


def counted(counts: dict, columns: list[str]) -> list:
    """The cells of ``columns``: "-" for none, "~" before an estimate."""
    cells = []
    for column in columns:
        value = counts[column]
        name = column.removesuffix("_seconds")
        mark = "~" if name in counts["estimated"] else ""
        cells.append("-" if value is None else f"{mark}{value}")
    return cells


class Command(BaseCommand):
    help = "Look at and act on django-jobs queues: stats, list, show, retry, ..."
    # No system checks: ``jobs health`` is the web pods' readiness probe, and
    # a schedule that ``check`` refuses (the worker's business) must not take
    # every web pod out of service; a person who looks at the queue needs
    # ``jobs stats`` most when something is wrong. ``check`` and ``runworker``
    # run them.
    requires_system_checks = []

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default", help="TASKS alias.")
        # Accepted as before, when it was the way past a failing check.
        parser.add_argument(
            "--skip-checks", action="store_true", help=argparse.SUPPRESS
        )
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        stats = actions.add_parser("stats", help="Counts per queue and in total.")
        stats.add_argument(
            "--queue", action="append", dest="queue_names", help="Only this queue."
        )
        add_json(stats)

        listing = actions.add_parser("list", help="The newest jobs, filtered.")
        listing.add_argument(
            "--state",
            choices=STATES,
            help="A state, or its django.tasks name (running, successful, failed).",
        )
        listing.add_argument("--queue", dest="queue_name")
        listing.add_argument("--task", help="Dotted path, or the function's name.")
        listing.add_argument("--workflow", type=int, metavar="ID")
        listing.add_argument(
            "--with-errors",
            action="store_true",
            help="Only jobs that failed at least once, whatever their state now.",
        )
        listing.add_argument("--limit", type=int, default=50)
        add_json(listing)

        show = actions.add_parser("show", help="Everything about one job.")
        show.add_argument("job_id", type=int, metavar="ID")
        add_json(show)

        workflows.add_parser(actions)

        kick = actions.add_parser(
            "kick", help="Run a queue's buried jobs again (ready now)."
        )
        kick.add_argument("queue_name", metavar="queue")
        kick.add_argument("--limit", type=int, default=None)

        for name, (_operation, _done, text) in ACTIONS.items():
            action = actions.add_parser(name, help=text)
            action.add_argument("ids", nargs="+", type=int, metavar="ID")

        for name, text in (
            ("pause", "Stop claiming from a queue."),
            ("resume", "Claim from it again."),
        ):
            actions.add_parser(name, help=text).add_argument(
                "queue_name", metavar="queue"
            )

        health = actions.add_parser(
            "health",
            help="Exit 0 if the database answers (and a worker here beats).",
        )
        health.add_argument(
            "--worker",
            action="store_true",
            help="Also need a worker on this host with a fresh heartbeat.",
        )
        health.add_argument(
            "--host", help="The worker's host name (default: this host's)."
        )
        health.add_argument(
            "--max-age",
            type=float,
            metavar="SECONDS",
            help="Oldest heartbeat that is fresh (default: WORKER_TIMEOUT).",
        )

        prune = actions.add_parser("prune", help="Delete old done and buried jobs.")
        prune.add_argument("--dry-run", action="store_true")
        prune.add_argument("--done-older-than", type=float, metavar="SECONDS")
        prune.add_argument("--buried-older-than", type=float, metavar="SECONDS")

    def run_from_argv(self, argv):
        with quiet_when_the_reader_leaves():  # jobs list | head
            super().run_from_argv(argv)

    def handle(self, *args, action, backend, **options):
        backend = self.backend_named(backend)
        try:
            if action in ACTIONS:
                self.act(action, backend, options["ids"])
            else:
                getattr(self, f"do_{action}")(backend, **options)
        except DatabaseError as exc:
            # Before migrate, or with the database away: one line, not the
            # driver's traceback. Any other error is a bug, and keeps its own.
            problem = health.database_problem(exc, backend.db)
            if problem is None:
                raise
            raise CommandError(problem) from None

    # Reading

    def do_stats(self, backend, *, queue_names, as_json: bool, **options):
        from django_jobs.stats import COUNTS, backend_stats

        report = backend_stats(backend.alias, queues=queue_names)
        report = workflows.with_waiting(report, backend.alias, backend.db)
        if as_json:
            self.stdout.write(dump(report))
            return
        columns = ["waiting", *(c for c in COUNTS if c != "waiting")]
        columns.append("oldest_ready_seconds")
        header = ["queue", *columns]
        rows = [
            [q["name"] + (" (paused)" if q["paused"] else ""), *counted(q, columns)]
            for q in report["queues"]
        ]
        rows.append(["(total)", *counted(report["total"], columns)])
        self.write_lines(table(header, rows))
        if report["total"]["estimated"]:
            self.stdout.write(
                f"~ estimated: more than {report['exact_up_to']:,} jobs in that"
                " state (see the monitoring docs)."
            )
        workers = report["workers"]
        self.stdout.write(
            f"\nworkers: {workers['live']} live ({workers['capacity']} slots, "
            f"{workers['busy']} busy), {workers['stale']} stale"
        )
        for alias, count in sorted(report["unknown_backends"].items()):
            self.stderr.write(
                f"warning: {count} ready job(s) wait for backend {alias!r}, which "
                "is not in the TASKS setting: no worker will run them."
            )

    def do_list(
        self, backend, *, state, queue_name, task, workflow, with_errors, limit, **o
    ):
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        jobs = Job.objects.using(backend.db).filter(backend=backend.alias)
        jobs = in_state(jobs, state, timezone.now())
        if queue_name:
            jobs = jobs.filter(queue=queue_name)
        if task:
            field = "task_path" if "." in task else "task_path__endswith"
            jobs = jobs.filter(**{field: task if "." in task else f".{task}"})
        if workflow is not None:
            jobs = jobs.filter(workflow_id=workflow)
        if with_errors:
            jobs = jobs.exclude(errors=[])  # the shape the partial index matches
        jobs = list(jobs.order_by("-pk")[:limit])
        if o["as_json"]:
            self.stdout.write(dump([job_summary(job) for job in jobs]))
            return
        header = ["id", "task", "queue", "state", "priority", "attempts", "run at"]
        header.append("progress")
        rows = [
            [
                job.pk,
                job.task_name,
                job.queue,
                job.display_state,
                job.priority,
                f"{job.attempts}/{job.max_attempts}",
                timezone.localtime(job.run_at).strftime("%Y-%m-%d %H:%M:%S"),
                describe_progress(job.progress),
            ]
            for job in jobs
        ]
        self.write_lines(table(header, rows))

    def do_show(self, backend, *, job_id: int, as_json: bool, **options):
        jobs = Job.objects.using(backend.db).filter(backend=backend.alias)
        job = jobs.filter(pk=job_id).first()
        if job is None:
            raise CommandError(
                f"Job {job_id} does not exist in backend {backend.alias!r}."
            )
        document = job_document(job, backend.db)
        if as_json:
            self.stdout.write(dump(document))
            return
        self.write_lines(job_lines(document))

    def do_workflows(self, backend, *, state, name, limit, as_json: bool, **o):
        found = workflows.find(
            backend.db, backend.alias, state=state, name=name, limit=limit
        )
        now = timezone.now()
        docs = workflows.summaries(found, backend.db, now)
        if as_json:
            self.stdout.write(dump(docs))
            return
        self.write_lines(workflows.lines(docs, now))

    def do_health(self, backend, *, worker: bool, host, max_age, **options):
        if max_age is not None and not max_age > 0:
            raise CommandError("--max-age must be a number of seconds above zero.")
        host = host or health.this_host()
        max_age = backend.config.WORKER_TIMEOUT if max_age is None else max_age
        try:
            health.check_database(backend.db)
            report = f"ok: database {backend.db!r} answers"
            if worker:
                found = health.check_worker(backend.db, backend.alias, host, max_age)
                beat = age(found.last_heartbeat)
                report += f"; worker {found.pk} beat {beat} ago"
        except health.Unhealthy as exc:
            self.stderr.write(f"unhealthy: {exc}")
            raise SystemExit(1) from None
        self.stdout.write(report)

    # Acting

    def do_kick(self, backend, *, queue_name: str, limit, **options):
        if limit is not None and limit < 1:
            raise CommandError("--limit must be at least 1.")
        self.known(queue_name, backend)
        buried = Job.objects.using(backend.db).filter(
            backend=backend.alias, queue=queue_name, state=State.BURIED
        )
        ids = buried.order_by("finished_at", "pk").values_list("pk", flat=True)
        if limit is not None:
            ids = ids[:limit]
        kicked = queue.kick(list(ids), using=backend.db)
        self.stdout.write(
            f"{kicked} job(s) kicked (ready again) in queue {queue_name!r}."
        )

    def act(self, action: str, backend, ids: list[int]) -> None:
        """Apply a queue operation to each job; name each refusal on stderr."""
        operation, done_text, _help = ACTIONS[action]
        done = 0
        for job_id in ids:  # one at a time, to say why a job was refused
            try:
                done += operation(job_id, using=backend.db)
            except JobError as exc:
                self.stderr.write(refusal(exc, action))
        self.stdout.write(f"{done} job(s) {done_text}, {len(ids) - done} refused.")
        if done < len(ids):
            raise SystemExit(1)

    def do_pause(self, backend, *, queue_name: str, **options):
        self.switch(queue.pause, backend, queue_name)
        self.stdout.write(f"Queue {queue_name!r} paused.")

    def do_resume(self, backend, *, queue_name: str, **options):
        self.switch(queue.resume, backend, queue_name)
        self.stdout.write(f"Queue {queue_name!r} resumed.")

    def do_prune(self, backend, *, dry_run, done_older_than, buried_older_than, **o):
        config = backend.config
        now = timezone.now()
        done = config.DONE_RETENTION if done_older_than is None else done_older_than
        buried = (
            config.BURIED_RETENTION if buried_older_than is None else buried_older_than
        )
        for name, value in (("done", done), ("buried", buried)):
            if value is not None and value < 0:
                raise CommandError(f"--{name}-older-than must not be negative.")
        counts = queue.prune(
            done_before=queue.cutoff(now, done),
            buried_before=queue.cutoff(now, buried),
            backend=backend.alias,
            dry_run=dry_run,
            using=backend.db,
        )
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{verb} {counts['done']} done and {counts['buried']} buried job(s)."
        )
        if dry_run or done is None or buried is None:
            return
        # As the worker's pruner: the ended workflows whose jobs are all gone.
        ended = queue.workflows.prune(
            queue.cutoff(now, max(done, buried)),
            backend=backend.alias,
            using=backend.db,
        )
        if ended:
            self.stdout.write(f"deleted {ended} ended workflow(s) with no job left.")

    # Helpers

    def backend_named(self, alias: str):
        """The backend, or why not in one line (no system check says it first)."""
        try:
            backend = jobs_backend(alias)
        except ValueError as exc:
            raise CommandError(f"--backend {exc}") from None
        if backend.db not in settings.DATABASES:
            raise CommandError(
                f"TASKS[{alias!r}]['OPTIONS']['DATABASE'] is {backend.db!r}, "
                "which is not a key of DATABASES."
            )
        return backend

    def known(self, name: str, backend) -> None:
        try:
            queue.check_queue(name, backend.alias, backend.db)
        except UnknownQueue as exc:
            raise CommandError(str(exc)) from None

    def switch(self, operation, backend, name: str) -> None:
        try:
            operation(name, backend=backend.alias, using=backend.db)
        except UnknownQueue as exc:
            raise CommandError(str(exc)) from None

    def write_lines(self, lines: list[str]) -> None:
        for line in lines:
            self.stdout.write(line)


def refusal(exc: JobError, action: str) -> str:
    """Why a job was refused, in the words of the subcommand asked for (a
    retry is a kick underneath; the person typed retry)."""
    if isinstance(exc, InvalidTransition):
        return f"Cannot {action} job {exc.job_id}: it is {exc.state}."
    return str(exc)
