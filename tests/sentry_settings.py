"""The test settings with Sentry's SDK (and its Django integration) sending
every event to a file (``SENTRY_TEST_EVENTS``, one JSON event a line), and
the Sentry hook of ``SENTRY_HOOK_UNDER_TEST``."""

import json
import os

import sentry_sdk
from sentry_sdk.integrations.django import DjangoIntegration
from sentry_sdk.transport import Transport

from tests.settings import *  # noqa: F403
from tests.settings import TASKS


class FileTransport(Transport):
    def capture_envelope(self, envelope):
        event = envelope.get_event()
        if event is not None:
            with open(os.environ["SENTRY_TEST_EVENTS"], "a") as out:
                out.write(json.dumps(event, default=str) + "\n")


sentry_sdk.init(
    dsn="https://key@sentry.invalid/1",
    transport=FileTransport,
    integrations=[DjangoIntegration()],
    default_integrations=True,
)

_default = TASKS["default"]
TASKS = {
    **TASKS,
    "default": {
        **_default,
        "OPTIONS": {
            **_default["OPTIONS"],
            "HOOKS": [os.environ.get("SENTRY_HOOK_UNDER_TEST", "")],
        },
    },
}
