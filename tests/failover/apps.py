from django.apps import AppConfig


class FailoverConfig(AppConfig):
    """An app only so that workers import ``tests.failover.tasks`` before forking."""

    name = "tests.failover"
    label = "failover"
