from django.db import models


class Record(models.Model):
    """A row written by a test task, so tests can count what really ran."""

    key = models.CharField(max_length=100)
    job_id = models.CharField(max_length=64, blank=True, default="")
    pid = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.key
