"""The Chave app's state: pairings, devices, what waits for a device, and sign-in requests.

- :class:`Pairing`: "Add the app" in the personal area; its short code (shown, and in the QR
  code) is kept only as a keyed hash, works once and for ``app_pairing_seconds``.
- :class:`Device`: a phone (or any browser) holding a non-extractable P-256 key: its public key
  (a JWK), its Web Push subscription, its offline-code secret (sealed) and lifetime. ``pending``
  until the SMS code to the key's mobile number is typed in the app, then ``active``; ``removed``
  is for good (the row stays for the history). At most ``app_max_devices`` active per key.
- :class:`InboxItem`: a code for the device (login or signing code by the app), sealed, until it
  expires; the app asks for it, and Web Push brings it when the device gave a subscription.
- :class:`SignInRequest`: a login waiting for the app: an *approval* (number matching) of a
  login whose PIN was typed on the login page, or a *QR sign-in* started on a computer.
- :class:`DeviceNonce`: the nonces of signed calls, so that a captured call cannot be replayed.

Nothing here holds a code, a PIN or a secret in clear.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy


class Pairing(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="app_pairings")
    code_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]


class DeviceStatus(models.TextChoices):
    PENDING = "pending", _("Waiting for the SMS code")
    ACTIVE = "active", pgettext_lazy("a device", "Active")
    REMOVED = "removed", pgettext_lazy("a device", "Removed")


class Device(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="app_devices")
    pairing = models.OneToOneField(Pairing, on_delete=models.PROTECT, related_name="device")
    name = models.CharField(max_length=60)
    status = models.CharField(max_length=8, choices=DeviceStatus.choices, default=DeviceStatus.PENDING)
    # The device's ECDSA P-256 public key as a JWK (kty, crv, x, y), and its RFC 7638 thumbprint:
    # one key pairs one device, once.
    public_key = models.JSONField()
    thumbprint = models.CharField(max_length=64, unique=True)
    # Web Push (RFC 8030/8291): the push resource and the subscription's keys, as the browser gave them.
    push_endpoint = models.CharField(max_length=1000, blank=True)
    push_p256dh = models.CharField(max_length=120, blank=True)
    push_auth = models.CharField(max_length=40, blank=True)
    # Offline codes (RFC 6238, HMAC-SHA-256): the secret sealed with CHAVE_KEY_SEAL_SECRET, the
    # lifetime (step) the citizen chose, and the newest step accepted (a code is accepted once).
    offline_secret_sealed = models.TextField(blank=True)
    offline_period = models.PositiveSmallIntegerField(default=30)
    offline_last_step = models.BigIntegerField(default=0)
    language = models.CharField(max_length=8, default="pt-pt")
    # The SMS code confirming the pairing is a code of this transaction (purpose "device").
    confirm_transaction = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    activated_at = models.DateTimeField(null=True, blank=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    # citizen | staff:<username> | app (the app itself) | key_cancelled | key_blocked | mobile_changed | not_confirmed
    removed_by = models.CharField(max_length=64, blank=True)
    removed_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["key", "status"])]

    def __str__(self) -> str:
        return f"{self.name} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == DeviceStatus.ACTIVE


class DeviceNonce(models.Model):
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="nonces")
    nonce = models.CharField(max_length=64)
    at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "nonce"], name="app_nonce_once")]


class InboxItem(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="inbox")
    # sha256 of the message: the worker may hand one message over twice (a retried push).
    digest = models.CharField(max_length=64)
    payload_sealed = models.TextField(blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["device", "digest"], name="app_inbox_once")]


class SignInRequest(models.Model):
    class Kind(models.TextChoices):
        APPROVAL = "approval", _("Approval in the app")
        QR = "qr", _("QR sign-in")

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the app")
        SCANNED = "scanned", _("Scanned, waiting for the PIN")  # QR only
        APPROVED = "approved", _("Approved")
        REFUSED = "refused", _("Refused")  # a wrong number, declined, or a wrong PIN spent it
        REPORTED = "reported", _("Reported as not the citizen")
        COMPLETED = "completed", _("Signed in")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    # Approval: the key from the PIN typed at the login page. QR: the key of the device that scanned.
    key = models.ForeignKey("identity.Key", null=True, blank=True, on_delete=models.CASCADE,
                            related_name="app_sign_ins")
    device = models.ForeignKey(Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="sign_ins")
    # Approval: the login transaction it completes. QR: a hash of the binder kept in the computer's session.
    login_transaction = models.CharField(max_length=64, blank=True, db_index=True)
    binder_hash = models.CharField(max_length=64, blank=True)
    # QR: the handle that starts its short code (letters; unique among live requests by construction).
    handle = models.CharField(max_length=8, blank=True, db_index=True)
    portal = models.CharField(max_length=200, blank=True)
    required_level = models.PositiveSmallIntegerField(default=0)
    # Approval: the number the login page shows, and the three the app offers (it among them).
    number = models.PositiveSmallIntegerField(null=True, blank=True)
    choices = models.JSONField(default=list, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    scanned_at = models.DateTimeField(null=True, blank=True)
    answered_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    # Why it was refused (wrong_number | declined | wrong_pin | key_unusable), for the login page.
    refusal = models.CharField(max_length=16, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(kind="qr") | ~Q(login_transaction=""), name="app_approval_has_login"),
        ]
