from django.db import models


class Signup(models.Model):
    """Someone who signed up; a welcome email goes out once the row is committed."""

    email = models.EmailField()
    created_at = models.DateTimeField(auto_now_add=True)
    welcomed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.email
