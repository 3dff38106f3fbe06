"""A task module that opens a socket when it is imported (a client made at
import time): a fork server must not import it (its children would share it)."""

import socket

from django_jobs.compat import task

CLIENT = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)


@task
def ping() -> str:
    return "pong"
