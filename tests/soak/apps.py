from django.apps import AppConfig


class SoakConfig(AppConfig):
    """An app only so that workers import the soak's tasks before forking:
    ``tests.soak.tasks`` (found as every app's tasks module is) and the
    workflow kind's ``tests.soak.flows``."""

    name = "tests.soak"
    label = "soak"

    def ready(self) -> None:
        from . import flows  # noqa: F401
