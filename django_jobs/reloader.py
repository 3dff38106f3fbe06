"""``runworker --reload``: restart the worker when Python files change.

For development, as ``runserver`` does, with Django's autoreloader. The
split is different, though: ``runserver`` runs the server in a thread of the
process that watches the files, while a worker's supervisor must own its
process's main thread (signal handlers) and fork with no other thread
running. So this process only watches: it runs the worker as its child,
stops it with SIGTERM when a file changes (running jobs finish, up to
``--shutdown-timeout``), then replaces itself with a fresh copy (``exec``),
which imports the changed code and starts a new worker.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from typing import Any

from django.utils import autoreload
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger("django_jobs.worker")

#: Set in the worker's environment: "you are the worker, not the watcher".
WORKER_ENV = "DJANGO_JOBS_RELOADED_WORKER"


def in_worker() -> bool:
    """True in the worker that a ``--reload`` watcher started."""
    return os.environ.get(WORKER_ENV) == "true"


class Watcher:
    """Watches the files of the code the worker runs; restarts it on change."""

    def __init__(self) -> None:
        self.changed: str | None = None
        self.stopping = False
        self.worker: subprocess.Popen | None = None
        self.reported_exit: int | None = None

    def run(self) -> int:
        """Watch until told to stop, or until the worker exits on its own."""
        self.import_tasks()
        reloader = autoreload.get_reloader()
        autoreload.file_changed.connect(self.on_file_changed)
        autoreload.autoreload_started.send(sender=reloader)
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)
        logger.info(
            "watching for file changes with %s; the worker restarts when one changes",
            type(reloader).__name__,
        )
        self.worker = self.start_worker()
        ticks = reloader.tick()
        while True:
            code = self.worker.poll()
            if code is not None and (self.stopping or code == 0):
                return code
            if self.changed is not None and not self.stopping:
                break
            if code is not None and code != self.reported_exit:
                self.reported_exit = code
                logger.error(
                    "the worker exited with status %d; it starts again when a "
                    "file changes",
                    code,
                )
            next(ticks)
        code = self.stop_worker()
        if self.stopping:  # interrupted while the worker was stopping
            return code
        self.restart()
        return 0  # not reached: restart() replaces this process

    def import_tasks(self) -> None:
        """Import what the supervisor imports, so that its files are watched.

        A module that fails to import is watched too (Django's autoreloader
        keeps its file), so that fixing it restarts the worker.
        """
        try:
            autoreload.check_errors(autodiscover_modules)("tasks")
        except Exception as exc:
            logger.error("importing the tasks modules failed: %s", exc)

    def start_worker(self) -> subprocess.Popen:
        """The worker, in a process group of its own: a Ctrl-C reaches this
        watcher only, which passes it on once (a second one would stop the
        running jobs at once). If the watcher dies, the worker gets SIGTERM."""
        env = {**os.environ, WORKER_ENV: "true"}
        return subprocess.Popen(
            autoreload.get_child_arguments(),
            env=env,
            process_group=0,
            preexec_fn=_terminate_with_parent,
        )

    def on_file_changed(self, sender: Any, file_path: Any, **kwargs: Any) -> bool:
        if self.changed is None:
            self.changed = str(file_path)
            logger.info("%s changed; restarting the worker", file_path)
        return True  # handled: Django's reloader must not exit this process

    def on_signal(self, signum: int, frame: Any) -> None:
        """Pass SIGINT and SIGTERM on to the worker; stop watching."""
        self.stopping = True
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signum)

    def stop_worker(self) -> int:
        """SIGTERM, then wait: running jobs finish, as at any shutdown."""
        assert self.worker is not None
        if self.worker.poll() is None:
            self.worker.send_signal(signal.SIGTERM)
        return self.worker.wait()

    def restart(self) -> None:
        """Replace this process with a fresh copy: new code, new watch list."""
        args = autoreload.get_child_arguments()
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(args[0], args)


def _terminate_with_parent() -> None:
    from .worker.process import set_parent_death_signal

    set_parent_death_signal(signal.SIGTERM)


def watch() -> int:
    """Run the worker under the watcher; the exit status for the command."""
    return Watcher().run()
