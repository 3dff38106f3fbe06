"""The test settings with the jobs' database behind PgBouncer.

``default`` goes through the pooler (``BOUNCER_URL``): enqueues and the
children's ORM work. ``direct`` goes straight to PostgreSQL (``DIRECT_URL``):
the supervisor's LISTEN and prepared claims, which need a session of their
own (``OPTIONS["WORKER_DATABASE"]``).
"""

import os

import environ

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

DATABASES = {
    "default": {
        **environ.Env.db_url_config(os.environ["BOUNCER_URL"]),
        # A transaction pooler cannot keep a server-side cursor across
        # statements (Django's documented setting for PgBouncer).
        "DISABLE_SERVER_SIDE_CURSORS": True,
    },
    "direct": environ.Env.db_url_config(os.environ["DIRECT_URL"]),
}
TASKS = {
    **TASKS,
    "default": {
        **TASKS["default"],
        "OPTIONS": {**TASKS["default"]["OPTIONS"], "WORKER_DATABASE": "direct"},
    },
}
