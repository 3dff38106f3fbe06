from django.apps import AppConfig


class SoakConfig(AppConfig):
    """An app only so that workers import ``tests.soak.tasks`` before forking."""

    name = "tests.soak"
    label = "soak"
