"""The test settings with a typo in a schedule's cron (four fields):
``manage.py check`` refuses it, and the ``jobs`` command still works."""

import copy

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = copy.deepcopy(TASKS)
TASKS["default"]["OPTIONS"]["SCHEDULES"] = {
    "nightly": {"task": "tests.tasks.tick", "cron": "0 3 * *", "args": ["x"]},
}
