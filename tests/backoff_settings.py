"""The test settings with a retry backoff of 2 s: a retry must wait for it."""

import copy

from tests.settings import *  # noqa: F403
from tests.settings import TASKS

TASKS = copy.deepcopy(TASKS)
TASKS["default"]["OPTIONS"]["RETRY_BACKOFF"] = 2
