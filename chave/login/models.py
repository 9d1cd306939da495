"""A login in progress: PIN checked, code being sent and entered.

The browser session holds only the transaction's random id; the transaction binds the key,
the chosen channel and destination, the client IP and the portal the login is for, and it is
the ``transaction`` the one-time code is issued for.
"""

import uuid

from django.db import models


class LoginTransaction(models.Model):
    class Status(models.TextChoices):
        PIN_OK = "pin_ok"
        CODE_SENT = "code_sent"
        PIN_CHANGE = "pin_change"  # code verified, a temporary PIN must be changed first
        APP_WAIT = "app_wait"  # waiting for the citizen's approval in the Chave app
        COMPLETED = "completed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="logins")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.PIN_OK)
    portal = models.CharField(max_length=200, blank=True)
    # The lowest assurance level the portal that sent the citizen here accepts (0: no portal).
    required_level = models.PositiveSmallIntegerField(default=0)
    # sms | email | x, or the Chave app's: app (a code pushed to a device; destination: its id),
    # app_offline (an offline code), app_approve (number matching).
    channel = models.CharField(max_length=16, blank=True)
    destination = models.CharField(max_length=254, blank=True)
    assurance_level = models.PositiveSmallIntegerField(null=True, blank=True)
    must_change_pin = models.BooleanField(default=False)
    # Wrong offline codes typed in this login (they have no code row to count on).
    wrong_attempts = models.PositiveSmallIntegerField(default=0)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
