from django.db import models


class ThrottleEvent(models.Model):
    """One counted action under a named throttle, for the database store.

    ``subject`` is a keyed hash of what is throttled (a key id, a phone number, an IP address),
    so the table holds no contact data of its own.
    """

    name = models.CharField(max_length=48)
    subject = models.CharField(max_length=64)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["name", "subject", "at"])]
