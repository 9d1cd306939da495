"""One-time security codes, stored only as a keyed hash.

A code belongs to one key, one purpose and one transaction (an opaque id chosen by the caller:
a login attempt, a contact verification, a signing request). Only the newest code of a
transaction can be used; older ones are marked superseded when a new one is issued.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _


class Purpose(models.TextChoices):
    LOGIN = "login", _("login")
    CONTACT = "contact", _("contact verification")
    SIGNING = "signing", _("signing")
    DEVICE = "device", _("adding the Chave app")


class OneTimeCode(models.Model):
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="codes")
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    transaction = models.CharField(max_length=64)
    channel = models.CharField(max_length=8)
    destination = models.CharField(max_length=254)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    wrong_attempts = models.PositiveIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)
    # Set when a newer code replaced this one or too many wrong entries spent it.
    invalidated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["purpose", "transaction", "-created_at"])]
        ordering = ["-created_at", "-id"]
