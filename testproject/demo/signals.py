"""Enqueue from a signal handler: only once the signup is committed.

The job row itself would roll back with the signup (it is written in the same
transaction), but waiting for the commit also means the worker never looks
for a signup that is not visible yet.
"""

from functools import partial

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Signup
from .tasks import send_welcome


@receiver(post_save, sender=Signup, dispatch_uid="demo_welcome_on_signup")
def welcome_new_signup(sender, instance: Signup, created: bool, **kwargs) -> None:
    if created:
        transaction.on_commit(partial(send_welcome.enqueue, instance.pk))
