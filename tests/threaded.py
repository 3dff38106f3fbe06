"""A task module that starts a thread when it is imported: a fork server must
not import it (a fork copies one thread only, and any lock it holds)."""

import threading
import time

from django_jobs.compat import task

threading.Thread(target=time.sleep, args=(3600,), daemon=True).start()


@task
def ping() -> str:
    return "pong"
