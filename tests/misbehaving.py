"""Tasks that hand back what a worker must survive.

A module of its own, which no app's ``tasks.py`` imports: workers import it
by the jobs' paths, as they do for tasks in any module of a real project.
"""

import os
import sys

from django_jobs.compat import task

ODD = {
    "nul": "a\x00b",
    "surrogate": "x\ud800y",
    "protocol": "\x00django-jobs:end not-a-number",
}


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no words for it")


@task
def raise_odd(kind: str) -> None:
    if kind == "unprintable":
        raise Unprintable()
    raise ValueError(ODD[kind])


@task
def return_odd(kind: str):
    if kind == "key":
        return {"k\x00": ODD["nul"], "list": [ODD["surrogate"]]}
    return ODD[kind]


@task(takes_context=True)
def progress_odd(context, kind: str) -> str:
    context.progress(1, 2, ODD[kind])
    import time

    time.sleep(0.8)  # long enough for the worker to write the progress
    return "reported"


@task(takes_context=True)
def checkpoint_odd(context, kind: str) -> str:
    try:
        context.checkpoint({"at": ODD[kind]})
    except TypeError as exc:
        return f"refused: {exc}"
    return "saved"


@task
def print_forged(other_job: int, word: str) -> str:
    """Print what looks like the worker's own end-of-job mark, then a word."""
    print(f"\x00django-jobs:end {other_job}")
    print("\x00django-jobs:end not-a-number")
    print(f"{word} is mine")
    return word


@task
def print_binary() -> str:
    sys.stdout.flush()
    os.write(1, b"\xff\xfe\x00\x01 binary \x80\n")
    os.write(2, b"no newline at the end \x00")
    return "binary printed"


@task
def print_long_line(size: int) -> int:
    sys.stdout.write("x" * size)
    sys.stdout.flush()
    return size


@task
def close_output() -> str:
    sys.stdout.flush()
    sys.stderr.flush()
    os.close(1)
    os.close(2)
    return "closed"


@task
def replace_output() -> str:
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    print("into the void")
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the job's own business)
    return "replaced"


@task
def say(word: str) -> str:
    print(f"saying {word}")
    return word


@task
def break_protocol() -> str:
    """Write a line that is no message into every Unix stream socket held.

    The worker's channel to this child is one of them: what a job writes
    there must stop the child, never the worker.
    """
    import socket
    import stat
    import time

    for fd in range(3, 256):
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            held = socket.socket(fileno=fd)
        except OSError:
            continue
        try:
            if held.family == socket.AF_UNIX and held.type == socket.SOCK_STREAM:
                held.sendall(b"this is not a message\n")
        except OSError:
            pass
        finally:
            held.detach()
    time.sleep(10)
    return "not stopped"
