"""Durable outbound messages and the development outbox.

An :class:`OutboundMessage` is written in the same database transaction as whatever caused it
(a code, a lock notice), with its task row; the worker sends it. Until it is sent its body is
sealed (encrypted) with the message key, since it carries a code; once sent or given up, only
the redacted body remains. Its status says what happened: queued (waiting, perhaps for a gateway
to come back), sending, sent, failed, expired, or interrupted (a worker died mid-send).
"""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _


class Channel(models.TextChoices):
    SMS = "sms", _("SMS")
    EMAIL = "email", _("E-mail")
    X = "x", _("X direct message")
    APP = "app", _("The Chave app")


class MessageStatus(models.TextChoices):
    QUEUED = "queued", _("queued")
    SENDING = "sending", _("sending")
    SENT = "sent", _("sent")
    FAILED = "failed", _("failed")
    EXPIRED = "expired", _("expired before it could be sent")
    # The worker stopped (killed, machine lost) while handing it to the gateway: whether the gateway
    # took it cannot be known, and it is not sent again (a code could arrive twice).
    INTERRUPTED = "interrupted", _("interrupted while sending: it may not have arrived")


class OutboundMessage(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    destination = models.CharField(max_length=254)
    kind = models.CharField(max_length=16)  # code | notice
    subject = models.CharField(max_length=200, blank=True)
    body_sealed = models.TextField(blank=True)
    body_redacted = models.TextField(blank=True)
    citizen = models.ForeignKey("identity.Citizen", null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=12, choices=MessageStatus.choices, default=MessageStatus.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    provider = models.CharField(max_length=32, blank=True)
    provider_ref = models.CharField(max_length=128, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When the current claim began (status "sending"): a claim older than delivery_sending_timeout_seconds
    # belongs to a worker that died (delivery.services.recover_stalled).
    sending_since = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["status", "created_at"])]


class DevOutboxMessage(models.Model):
    """What the development sink "sent": kept in clear, for `chave outbox` and the dev page.

    Only the sink provider writes here, and production refuses to start with the sink.
    """

    channel = models.CharField(max_length=8, choices=Channel.choices)
    to = models.CharField(max_length=254, db_index=True)
    subject = models.CharField(max_length=200, blank=True)
    body = models.TextField()
    sent_at = models.DateTimeField()
    message = models.ForeignKey(OutboundMessage, null=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-sent_at", "-id"]
