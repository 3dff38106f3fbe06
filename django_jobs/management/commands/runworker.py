"""``manage.py runworker``: run a django-jobs worker (see django_jobs.worker)."""

from django.core.management.base import BaseCommand

from django_jobs import reloader
from django_jobs.logging import worker_logging
from django_jobs.worker.options import WorkerOptions
from django_jobs.worker.supervisor import run_worker


class Command(BaseCommand):
    help = (
        "Claim ready jobs and run each one in its own process, forked from a warm "
        "parent. Stops gracefully on SIGTERM or SIGINT."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--queue",
            action="append",
            metavar="NAME",
            help="Serve this queue (repeatable). Default: every queue.",
        )
        parser.add_argument(
            "--concurrency",
            metavar="N|MIN:MAX",
            help="Jobs running at once: N, or MIN:MAX to grow with the backlog "
            "(from MIN children up to MAX). Default: the number of CPUs.",
        )
        parser.add_argument(
            "--jobs-per-child",
            metavar="N",
            help="Jobs a child process runs before it is replaced. Default: 1.",
        )
        parser.add_argument(
            "--async-concurrency",
            metavar="K",
            help="For a worker of async lane queues (OPTIONS['ASYNC_QUEUES']): "
            "jobs each child runs at once. Default: the queue's own number.",
        )
        parser.add_argument(
            "--burst",
            action="store_true",
            help="Exit (status 0) once no job this worker may run is ready.",
        )
        parser.add_argument(
            "--max-jobs", metavar="N", help="Exit after claiming N jobs."
        )
        parser.add_argument(
            "--poll-interval",
            metavar="SECONDS",
            help="Seconds between polls when idle (default 1; PostgreSQL also "
            "wakes workers with NOTIFY).",
        )
        parser.add_argument(
            "--shutdown-timeout",
            metavar="SECONDS",
            help="On SIGTERM/SIGINT, how long running jobs may take to finish "
            "before they are stopped and put back (default 30).",
        )
        parser.add_argument(
            "--max-memory",
            metavar="SIZE",
            help="Kill a job whose processes use more resident memory than this "
            '(bytes, or "512MB", "1GiB"), unless its task sets max_memory. '
            "Default: OPTIONS['MAX_MEMORY'].",
        )
        parser.add_argument(
            "--max-cpu-seconds",
            metavar="SECONDS",
            help="Kill a job whose processes use more CPU time than this, unless "
            "its task sets max_cpu_seconds. Default: OPTIONS['MAX_CPU_SECONDS'].",
        )
        parser.add_argument(
            "--json-logs",
            action="store_true",
            help="Log one JSON object per line (for log shippers), the jobs' "
            "output included.",
        )
        parser.add_argument(
            "--backend",
            default="default",
            metavar="ALIAS",
            help="The TASKS alias to work for. Default: 'default'.",
        )
        parser.add_argument(
            "--reload",
            action="store_true",
            help="For development: restart the worker when a Python file changes.",
        )

    def handle(self, *args, **options):
        worker_options = WorkerOptions.from_command_line(options)
        with worker_logging(options["verbosity"], options["json_logs"]):
            if options["reload"]:
                if not reloader.in_worker():
                    raise SystemExit(reloader.watch())
                reloader.report_imports()
            code = run_worker(worker_options)
        if code:
            raise SystemExit(code)
