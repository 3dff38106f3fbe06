"""``runworker --reload``: restart the worker when Python files change.

For development, as ``runserver`` does, with Django's autoreloader. The
split is different, though: ``runserver`` runs the server in a thread of the
process that watches the files, while a worker's supervisor must own its
process's main thread (signal handlers) and fork with no other thread
running. So this process only watches: it runs the worker as its child,
stops it with SIGTERM when a file changes (running jobs finish, up to
``--shutdown-timeout``), then replaces itself with a fresh copy (``exec``),
which imports the changed code and starts a new worker.

The watcher imports what the supervisor imports at start, but a worker's
processes import more as jobs come: a task module outside ``tasks.py`` is
imported by the first child that runs one of its jobs, then by the fork
server, and every later child inherits it. The watcher never imports it, so
Django's reloader would not watch it, and an edit would leave the fork server
on the old code. So the worker's processes report each module file they
import (``ImportReporter``, installed in the supervisor before it forks and
so inherited by the fork server and every child) on a pipe that the watcher
reads (``ImportReports``); the watcher watches those files too.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

from django.utils import autoreload
from django.utils.module_loading import autodiscover_modules

logger = logging.getLogger("django_jobs.worker")

#: Set in the worker's environment: "you are the worker, not the watcher".
WORKER_ENV = "DJANGO_JOBS_RELOADED_WORKER"
#: Set in the worker's environment: the pipe's descriptor on which its
#: processes report the files of the modules they import.
IMPORTS_ENV = "DJANGO_JOBS_RELOAD_IMPORTS_FD"


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
        self.imports = ImportReports()
        #: The files the worker's processes reported, watched from then on.
        self.imported: set[str] = set()

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
        self.imports.listen()
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
            self.watch_imported(reloader)
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
        env = {
            **os.environ,
            WORKER_ENV: "true",
            IMPORTS_ENV: str(self.imports.write_end),
        }
        return subprocess.Popen(
            autoreload.get_child_arguments(),
            env=env,
            process_group=0,
            preexec_fn=_terminate_with_parent,
            pass_fds=(self.imports.write_end,),
        )

    def watch_imported(self, reloader: autoreload.BaseReloader) -> None:
        """Watch the files that the worker's processes imported since the
        last look. One that changed since its import is a change now: the
        reloader's first look at a file only notes its time, and the edit
        may have come before that look."""
        added = False
        for path, stamp in self.imports.take():
            if path not in self.imported:
                self.imported.add(path)
                reloader.extra_files.add(Path(path).absolute())
                added = True
            try:
                edited = os.stat(path).st_mtime_ns != stamp
            except OSError:  # removed: a change too
                edited = True
            if edited:
                self.on_file_changed(reloader, Path(path))
        if added and hasattr(reloader, "update_watches"):
            reloader.update_watches()  # Watchman's list is not read every tick

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


class ImportReports:
    """The watcher's end of the pipe on which the worker's processes name
    the module files they import (see ``ImportReporter``)."""

    def __init__(self) -> None:
        self.read_end, self.write_end = os.pipe()
        self.lock = threading.Lock()
        self.pending: list[tuple[str, int]] = []

    def listen(self) -> None:
        """Once the worker holds the write end: read in a thread of our own,
        so that no process of the worker ever waits on a full pipe. The
        thread ends when the last of them has exited."""
        os.close(self.write_end)
        reader = threading.Thread(
            target=self._read, name="django-jobs-reload-imports", daemon=True
        )
        reader.start()

    def _read(self) -> None:
        with open(self.read_end, "rb") as pipe:
            for line in pipe:
                stamp, _, path = line.rstrip(b"\n").partition(b" ")
                if stamp.isdigit() and path:
                    with self.lock:
                        self.pending.append((os.fsdecode(path), int(stamp)))

    def take(self) -> list[tuple[str, int]]:
        """The reports received since the last call: (path, mtime in ns)."""
        with self.lock:
            taken, self.pending = self.pending, []
        return taken


class ImportReporter:
    """First on ``sys.meta_path`` in the worker, and in the fork server and
    children it forks: it finds nothing of its own, but asks the finders
    after it and reports the file of what they found, with its mtime then.

    A module that then fails to import is reported too, so that fixing it
    restarts the worker.
    """

    def __init__(self, fd: int) -> None:
        self.fd: int | None = fd
        #: Files this process reported (a fork inherits its parent's).
        self.reported: set[str] = set()

    def find_spec(
        self, name: str, path: Any = None, target: Any = None
    ) -> ModuleSpec | None:
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                self.report(spec)
                return spec
        return None

    def report(self, spec: ModuleSpec) -> None:
        origin = spec.origin if spec.has_location else None
        if origin is None or self.fd is None or origin in self.reported:
            return
        try:
            stamp = os.stat(origin).st_mtime_ns
        except OSError:  # not a file of its own (in a zip archive)
            return
        self.reported.add(origin)
        line = f"{stamp} ".encode() + os.fsencode(origin) + b"\n"
        try:
            os.write(self.fd, line)  # one write, under PIPE_BUF: never interleaved
        except OSError:  # the watcher is gone: this worker is being stopped
            self.fd = None


def report_imports() -> None:
    """In a worker that a watcher started: report to it the module files
    that this process, its fork server and its children import from now on.

    The variable is taken out of the environment and the descriptor kept
    from ``exec``: a job's own subprocesses have nothing to report.
    """
    fd = os.environ.pop(IMPORTS_ENV, None)
    if not in_worker() or fd is None or not fd.isdigit():
        return
    os.set_inheritable(int(fd), False)
    sys.meta_path.insert(0, ImportReporter(int(fd)))


def _terminate_with_parent() -> None:
    from .worker.process import set_parent_death_signal

    set_parent_death_signal(signal.SIGTERM)


def watch() -> int:
    """Run the worker under the watcher; the exit status for the command."""
    return Watcher().run()
