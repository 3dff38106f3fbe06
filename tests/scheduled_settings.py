"""The test settings with a schedule whose task lives in a module that no
app's ``tasks.py`` imports (tests.elsewhere)."""

import copy

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = copy.deepcopy(TASKS)
TASKS["default"]["OPTIONS"]["SCHEDULES"] = {
    "new-year": {"task": "tests.elsewhere.greet", "cron": "0 0 1 1 *", "args": ["y"]},
}
