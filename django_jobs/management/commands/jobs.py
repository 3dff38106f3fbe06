"""``manage.py jobs``: look at and act on the queue from a shell.

Thin: each subcommand parses its arguments and calls ``django_jobs.queue``
(to change jobs) or ``django_jobs.stats`` (to count them).
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from django_jobs import queue as operations
from django_jobs.backend import jobs_backend
from django_jobs.exceptions import JobError, UnknownQueue
from django_jobs.models import Job
from django_jobs.states import DELAYED, State

STATES = [*State.values, DELAYED]


class Command(BaseCommand):
    help = "Look at and act on django-jobs queues: stats, list, kick, bury, retry, ..."

    def add_arguments(self, parser):
        parser.add_argument("--backend", default="default", help="TASKS alias.")
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

        stats = actions.add_parser("stats", help="Counts per queue and in total.")
        stats.add_argument("--queue", action="append", help="Only this queue.")
        stats.add_argument(
            "--json", action="store_true", dest="as_json", help="Machine-readable."
        )

        listing = actions.add_parser("list", help="The newest jobs, filtered.")
        listing.add_argument("--state", choices=STATES)
        listing.add_argument("--queue")
        listing.add_argument("--task", help="Dotted path, or the function's name.")
        listing.add_argument("--limit", type=int, default=50)
        listing.add_argument("--json", action="store_true", dest="as_json")

        kick = actions.add_parser("kick", help="Buried jobs of a queue back to ready.")
        kick.add_argument("queue")
        kick.add_argument("--limit", type=int, default=None)

        for name, text in (
            ("bury", "Set jobs aside (ready jobs only)."),
            ("retry", "Run buried or delayed jobs now."),
            ("cancel", "Bury waiting jobs; stop running ones."),
            ("delete", "Delete jobs that are not running."),
        ):
            action = actions.add_parser(name, help=text)
            action.add_argument("ids", nargs="+", type=int, metavar="ID")

        for name, text in (("pause", "Stop claiming from a queue."), ("resume", "")):
            action = actions.add_parser(name, help=text or "Claim from it again.")
            action.add_argument("queue")

        prune = actions.add_parser("prune", help="Delete old done and buried jobs.")
        prune.add_argument("--dry-run", action="store_true")
        prune.add_argument("--done-older-than", type=float, metavar="SECONDS")
        prune.add_argument("--buried-older-than", type=float, metavar="SECONDS")

    def handle(self, *args, action, backend, **options):
        try:
            backend = jobs_backend(backend)
        except ValueError as exc:
            raise CommandError(f"--backend {exc}") from None
        getattr(self, f"do_{action}")(backend, **options)

    # Reading

    def do_stats(self, backend, *, queue, as_json: bool, **options):
        from django_jobs.stats import COUNTS, backend_stats

        report = backend_stats(backend.alias, queues=queue)
        if as_json:
            self.stdout.write(dump(report))
            return
        columns = [*COUNTS, "oldest_ready_seconds"]
        header = ["queue", *columns]
        rows = [
            [q["name"] + (" (paused)" if q["paused"] else ""), *(q[c] for c in columns)]
            for q in report["queues"]
        ]
        rows.append(["(total)", *(report["total"][c] for c in columns)])
        rows = [["-" if cell is None else cell for cell in row] for row in rows]
        self.write_table(header, rows)
        workers = report["workers"]
        self.stdout.write(
            f"\nworkers: {workers['live']} live ({workers['capacity']} slots, "
            f"{workers['busy']} busy), {workers['stale']} stale"
        )

    def do_list(self, backend, *, state, queue, task, limit, as_json: bool, **options):
        if limit < 1:
            raise CommandError("--limit must be at least 1.")
        now = timezone.now()
        jobs = Job.objects.using(backend.db).filter(backend=backend.alias)
        if state == DELAYED:
            jobs = jobs.delayed(now)
        elif state == State.READY:
            jobs = jobs.ready(now)
        elif state:
            jobs = jobs.filter(state=state)
        if queue:
            jobs = jobs.filter(queue=queue)
        if task:
            field = "task_path" if "." in task else "task_path__endswith"
            jobs = jobs.filter(**{field: task if "." in task else f".{task}"})
        jobs = list(jobs.order_by("-pk")[:limit])
        if as_json:
            self.stdout.write(dump([job_summary(job) for job in jobs]))
            return
        header = ["id", "task", "queue", "state", "priority", "attempts", "run at"]
        header.append("progress")
        self.write_table(
            header,
            [
                [
                    job.pk,
                    job.task_name,
                    job.queue,
                    job.display_state,
                    job.priority,
                    f"{job.attempts}/{job.max_attempts}",
                    job.run_at.strftime("%Y-%m-%d %H:%M:%S"),
                    describe_progress(job.progress),
                ]
                for job in jobs
            ],
        )

    # Acting

    def do_kick(self, backend, *, queue: str, limit, **options):
        buried = Job.objects.using(backend.db).filter(
            backend=backend.alias, queue=queue, state=State.BURIED
        )
        ids = buried.order_by("finished_at", "pk").values_list("pk", flat=True)
        if limit is not None:
            ids = ids[: max(limit, 0)]
        kicked = operations.kick(list(ids), using=backend.db)
        self.stdout.write(f"{kicked} job(s) kicked in queue {queue!r}.")

    def do_bury(self, backend, *, ids, **options):
        self.act("buried", operations.bury, backend, ids)

    def do_retry(self, backend, *, ids, **options):
        self.act("made ready", operations.kick, backend, ids)

    def do_cancel(self, backend, *, ids, **options):
        self.act("cancelled", operations.cancel, backend, ids)

    def do_delete(self, backend, *, ids, **options):
        self.act("deleted", operations.delete, backend, ids)

    def do_pause(self, backend, *, queue: str, **options):
        self.switch(operations.pause, backend, queue)
        self.stdout.write(f"Queue {queue!r} paused.")

    def do_resume(self, backend, *, queue: str, **options):
        self.switch(operations.resume, backend, queue)
        self.stdout.write(f"Queue {queue!r} resumed.")

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
        counts = operations.prune(
            done_before=operations.cutoff(now, done),
            buried_before=operations.cutoff(now, buried),
            backend=backend.alias,
            dry_run=dry_run,
            using=backend.db,
        )
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(
            f"{verb} {counts['done']} done and {counts['buried']} buried job(s)."
        )

    # Helpers

    def switch(self, operation, backend, queue: str) -> None:
        try:
            operation(queue, backend=backend.alias, using=backend.db)
        except UnknownQueue as exc:
            raise CommandError(str(exc)) from None

    def act(self, what: str, operation, backend, ids: list[int]) -> None:
        done = 0
        for job_id in ids:  # one at a time, to say why a job was refused
            try:
                done += operation(job_id, using=backend.db)
            except JobError as exc:
                self.stderr.write(str(exc))
        self.stdout.write(f"{done} job(s) {what}, {len(ids) - done} refused.")
        if done < len(ids):
            raise SystemExit(1)

    def write_table(self, header: list[str], rows: list[list]) -> None:
        cells = [[str(c) for c in header], *[[str(c) for c in row] for row in rows]]
        widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
        for number, row in enumerate(cells):
            self.stdout.write(
                "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            )
            if number == 0:
                self.stdout.write("  ".join("-" * w for w in widths))


def describe_progress(progress: dict | None) -> str:
    """'3/4 (75%) almost there', from what the job reported."""
    if not progress:
        return ""
    done, total = progress.get("done"), progress.get("total")
    text = f"{done:g}" if total is None else f"{done:g}/{total:g}"
    if total:
        text += f" ({done / total:.0%})"
    if progress.get("message"):
        text += f" {progress['message']}"
    return text


def job_summary(job: Job) -> dict:
    return {
        "id": job.pk,
        "task": job.task_path,
        "queue": job.queue,
        "state": job.display_state,
        "priority": job.priority,
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "run_at": job.run_at.isoformat(),
        "enqueued_at": job.enqueued_at.isoformat(),
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "progress": job.progress,
    }


def dump(value) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)
