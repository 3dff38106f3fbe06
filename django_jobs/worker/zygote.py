"""The fork server: a warm, connection-free parent for every child.

The zygote is forked from the supervisor after Django is set up and the task
modules are imported, but before the supervisor opens a database connection
or does anything else. Forking from it therefore costs a fork of a quiet
process, not the start of an interpreter, and no child can inherit, use or
close the supervisor's connection.

It serves fork requests over a SEQPACKET socket. Each request carries the
child's end of a socket pair (passed as a file descriptor), so the child talks
to the supervisor directly, and the read end of the child's stop pipe (see
``process.obey_only_the_supervisor``). The zygote reaps its children and
reports every exit status; if the supervisor goes away, it kills its children
and exits.

Stop signals (SIGTERM, SIGINT) are the supervisor's: a process manager that
sends them to every process of the worker stops neither the zygote nor a
child; the supervisor drains, then lets the zygote go.
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from . import protocol, span_export
from .preload import Probes, import_here
from .process import (
    gather_into_huge_pages,
    leave_stop_signals_to_the_supervisor,
    obey_only_the_supervisor,
    set_parent_death_signal,
)

ChildMain = Callable[[socket.socket, bool], None]


@dataclass
class Forking:
    """The supervisor's ends of a child it asked for."""

    request: int
    sock: socket.socket
    #: The read end of the child's output (stdout and stderr), if captured.
    output: int | None
    #: The write end of the child's stop pipe: closed to say "stop now".
    stop_pipe: int


class ZygoteHandle:
    """The supervisor's side of the zygote."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock = sock
        self.pid = pid
        self.next_request = 0

    def fork(self, capture_output: bool) -> Forking:
        """Ask for a child; our ends of its socket, output and stop pipe."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        stop_r, stop_w = os.pipe()
        fds = [theirs.fileno(), stop_r]
        output = None
        if capture_output:
            output, output_w = os.pipe()
            os.set_blocking(output, False)
            fds.append(output_w)
        self.next_request += 1
        request = protocol.encode(protocol.Fork(self.next_request))
        try:
            socket.send_fds(self.sock, [request], fds)
        except OSError:  # the zygote is gone: its exit is reported apart
            ours.close()
            os.close(stop_w)
            if output is not None:
                os.close(output)
            raise
        finally:
            theirs.close()
            os.close(stop_r)
            if capture_output:
                os.close(output_w)
        return Forking(self.next_request, ours, output, stop_w)

    def preload(self, module: str) -> None:
        """Ask the zygote to import ``module`` (see preload.py)."""
        request = protocol.encode(protocol.Preload(module))
        with contextlib.suppress(OSError):  # gone: its exit says so
            self.sock.send(request)

    def read(self) -> list[protocol.Message] | None:
        """Pending reports ("forked", "exited"); ``None`` once the zygote is gone."""
        messages = []
        while True:
            try:
                data = self.sock.recv(4096, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                return messages
            except OSError:
                return None
            if not data:
                return messages if messages else None
            messages.append(protocol.decode(data, "zygote"))

    def close(self, timeout: float = 5.0) -> None:
        """Close the control socket; the zygote kills its children and exits."""
        self.sock.close()
        _wait_for(self.pid, timeout)


def start(child_main: ChildMain) -> ZygoteHandle:
    """Fork the zygote from the current (warm, connection-free) process."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:  # the zygote
        code = 0
        try:
            ours.close()
            Zygote(theirs, child_main).serve()
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    theirs.close()
    return ZygoteHandle(ours, pid)


class Zygote:
    def __init__(self, control: socket.socket, child_main: ChildMain) -> None:
        self.control = control
        self.child_main = child_main
        self.children: set[int] = set()
        self.probes = Probes()

    def serve(self) -> None:
        set_parent_death_signal(signal.SIGKILL)
        # Ctrl-C in a terminal signals the whole foreground group, and process
        # managers often signal every process: shutdown is the supervisor's.
        leave_stop_signals_to_the_supervisor()
        self.wakeup_r, self.wakeup_w = os.pipe()
        os.set_blocking(self.wakeup_r, False)
        os.set_blocking(self.wakeup_w, False)
        signal.set_wakeup_fd(self.wakeup_w)
        signal.signal(signal.SIGCHLD, lambda signum, frame: None)
        span_export.prepare_fork_server()  # no exporting thread here
        # Objects that exist now are shared with every child; keep the
        # collector from touching (and so copying) their pages, and make the
        # pages cheap to share.
        gc.collect()
        gc.freeze()
        gather_into_huge_pages()
        self.selector = selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ)
        selector.register(self.wakeup_r, selectors.EVENT_READ)
        while True:
            timeout = 1.0 if self.probes.running else None
            for key, _ in selector.select(timeout):
                if key.fileobj is self.control:
                    if not self.handle_request():
                        self.shutdown()
                        return
                elif key.data == "probe":
                    self.probed(key.fileobj)
                else:
                    _drain(self.wakeup_r)
            for fd in self.probes.late(time.monotonic()):
                self.probed(fd)
            self.reap()

    def handle_request(self) -> bool:
        try:
            data, fds, _, _ = socket.recv_fds(self.control, 4096, 3)
        except (BlockingIOError, InterruptedError):
            return True
        except OSError:
            return False
        if not data:
            return False
        try:
            request = protocol.decode(data, "supervisor")
        except protocol.ProtocolError:
            request = None
        if isinstance(request, protocol.Preload) and not fds:
            self.preload(request.module)
            return True
        if not isinstance(request, protocol.Fork) or len(fds) < 2:
            for fd in fds:
                os.close(fd)
            return True
        pid = os.fork()
        if pid == 0:
            self.become_child(*fds)
        for fd in fds:
            os.close(fd)
        with contextlib.suppress(OSError):  # the child does it too; first wins
            os.setpgid(pid, pid)
        self.children.add(pid)
        self.report(protocol.Forked(request.id, pid))
        return True

    def preload(self, module: str) -> None:
        if module in sys.modules:
            self.report(protocol.Preloaded(module, ok=True))
            return
        fd = self.probes.start(module, on_fork=self.control.close)
        self.selector.register(fd, selectors.EVENT_READ, "probe")

    def probed(self, fd: int) -> None:
        """A probe answered (or ran out of time): import the module, or not."""
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(fd)
        module, found = self.probes.answer(fd)
        if found.get("ok"):
            found = import_here(module)
            gc.freeze()  # the module's objects are shared with every child now
        self.report(protocol.Preloaded(module, **found))

    def become_child(self, fd: int, stop_pipe: int, output: int | None = None) -> None:
        code = 70
        try:
            os.setpgid(0, 0)
            if output is not None:  # stdout and stderr go to the supervisor
                os.dup2(output, 1)
                os.dup2(output, 2)
                os.close(output)
                for stream in (sys.stdout, sys.stderr):
                    stream.reconfigure(line_buffering=True)
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            os.set_inheritable(stop_pipe, False)
            obey_only_the_supervisor(stop_pipe)
            os.close(self.wakeup_r)
            os.close(self.wakeup_w)
            self.control.close()
            set_parent_death_signal(signal.SIGKILL)
            self.child_main(socket.socket(fileno=fd), output is not None)
            code = 0
        except BaseException:  # the worker's own failure: say what it was
            with contextlib.suppress(BaseException):
                traceback.print_exc()
                sys.stderr.flush()
        finally:
            os._exit(code)

    def reap(self) -> None:
        while self.children or self.probes.running:
            try:
                pid, status, used = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in self.children:
                self.children.discard(pid)
                cpu, peak = used.ru_utime + used.ru_stime, used.ru_maxrss * 1024
                self.report(protocol.Exited(pid, status, cpu=cpu, max_rss=peak))

    def report(self, message: protocol.Message) -> None:
        with contextlib.suppress(OSError):  # the supervisor is gone: shutdown follows
            self.control.send(protocol.encode(message))

    def shutdown(self) -> None:
        """The supervisor is gone: no child may outlive it and run on."""
        for pid in self.children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        for pid in list(self.children):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except (BlockingIOError, InterruptedError):
        pass


def _wait_for(pid: int, timeout: float) -> None:
    """Reap ``pid`` within ``timeout`` seconds, killing it if it lingers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if done:
            return
        time.sleep(0.01)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass
