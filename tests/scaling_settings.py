"""The test settings for autoscaling workers: a short quiet interval, and
the connection budget from the environment (``SCALING_BUDGET``)."""

import copy
import os

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = copy.deepcopy(TASKS)
TASKS["default"]["OPTIONS"].update(
    {
        "SCALE_DOWN_AFTER": float(os.environ.get("SCALING_DOWN_AFTER", "2")),
        "CONNECTION_BUDGET": int(os.environ["SCALING_BUDGET"])
        if os.environ.get("SCALING_BUDGET")
        else None,
    }
)
