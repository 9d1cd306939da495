"""Remote signing: a citizen's signing credential and the requests that use it.

A :class:`SigningCredential` is what activation makes: the signing PIN (hashed like login PINs),
a key pair in the HSM (found by ``hsm_label``) and the certificate the signing CA issued for it.
At most one credential per citizen is active; a revoked one stays for the record and for the CRL
and OCSP answers.

A :class:`SigningCertificate` is one certificate the CA issued for a credential's key: the first at
activation, then a re-issue for the same key when the citizen's identity document is renewed
(the key's validity grows past the certificate's, or the certified identity data changed). The
credential's own certificate fields are its current certificate; the history is what the CRL
and OCSP answer from, so an earlier certificate is still known by its serial.

A :class:`SigningRequest` is one authorisation: which documents (names) and hashes, for which
integrator (or the personal area), the one-time code sent for it, and, once PIN and code were
right, the signature activation token (stored as a hash only) that signs exactly those hashes
once, within ``signing_authorisation_seconds``.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class KeyAlgorithm(models.TextChoices):
    """A citizen's signing key: RSA 3072 (PKCS#1 v1.5, what SCMD integrators build on; the
    default) or ECDSA P-256 (keys made before RSA was offered, or by choice). The setting
    ``CHAVE_SIGNING_KEY_ALGORITHM`` picks it for new keys; existing keys keep theirs."""

    RSA_3072 = "rsa-3072", "RSA 3072"
    EC_P256 = "ec-p256", "ECDSA P-256"


class SigningCredential(models.Model):
    class Status(models.TextChoices):
        ACTIVE = "active", _("active")
        REVOKED = "revoked", _("revoked")

    credential_id = models.CharField(max_length=40, unique=True)
    citizen = models.ForeignKey("identity.Citizen", on_delete=models.PROTECT, related_name="signing_credentials")
    key = models.ForeignKey("identity.Key", on_delete=models.PROTECT, related_name="signing_credentials")
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.ACTIVE)
    pin_hash = models.CharField(max_length=200)
    pin_failures = models.PositiveIntegerField(default=0)
    # Set after signing_pin_max_failures wrong PINs (or a PIN printed by the CLI): signing is
    # refused until the citizen chooses a new signing PIN (AMA codes 901/902).
    pin_must_change = models.BooleanField(default=False)
    hsm_label = models.CharField(max_length=64, unique=True)
    key_algorithm = models.CharField(max_length=16, choices=KeyAlgorithm.choices)
    certificate_der = models.BinaryField()
    serial_number = models.CharField(max_length=64, unique=True)  # hex
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    created_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    # An RFC 5280 CRLReason name (cryptography's ReasonFlags value).
    revocation_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["citizen"], condition=Q(status="active"),
                                    name="signing_one_active_credential_per_citizen"),
        ]

    def __str__(self) -> str:
        return f"signing credential {self.credential_id} ({self.status})"

    @property
    def is_active(self) -> bool:
        return self.status == self.Status.ACTIVE


class SigningCertificate(models.Model):
    """One certificate of a credential's key. ``current`` is the one the credential signs with;
    ``superseded`` was replaced by a re-issue and stays valid (OCSP "good") until its own
    notAfter, as the identity it certifies is still true; ``revoked`` is on the CRL (the
    credential was revoked, or a re-issue changed the certified identity data: ``superseded``)."""

    class Status(models.TextChoices):
        CURRENT = "current", _("current")
        SUPERSEDED = "superseded", _("replaced, still valid")
        REVOKED = "revoked", _("revoked")

    credential = models.ForeignKey(SigningCredential, on_delete=models.PROTECT, related_name="certificates")
    serial_number = models.CharField(max_length=64, unique=True)  # hex
    certificate_der = models.BinaryField()
    not_before = models.DateTimeField()
    not_after = models.DateTimeField()
    issued_at = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.CURRENT)
    superseded_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # An RFC 5280 CRLReason name (cryptography's ReasonFlags value).
    revocation_reason = models.CharField(max_length=32, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["credential"], condition=Q(status="current"),
                                    name="signing_one_current_certificate_per_credential"),
        ]
        indexes = [models.Index(fields=["status", "revoked_at"])]

    def __str__(self) -> str:
        return f"signing certificate {self.serial_number} ({self.status})"


def new_id() -> str:
    return uuid.uuid4().hex


class SigningRequest(models.Model):
    class Via(models.TextChoices):
        CSC = "csc", "CSC API"
        SCMD = "cmd", "SCMD (SOAP)"
        AREA = "area", _("personal area")

    class Status(models.TextChoices):
        CODE_SENT = "code_sent", _("code sent")
        AUTHORISED = "authorised", _("authorised")
        SIGNED = "signed", _("signed")
        FAILED = "failed", _("failed")

    process_id = models.CharField(max_length=40, unique=True, default=new_id)
    credential = models.ForeignKey(SigningCredential, on_delete=models.CASCADE, related_name="requests")
    via = models.CharField(max_length=4, choices=Via.choices)
    client_id = models.CharField(max_length=64, blank=True)  # the integrator; empty for the personal area
    client_name = models.CharField(max_length=200, blank=True)
    documents = models.JSONField(default=list)  # names shown to the citizen and in the code message
    # The integrator's own identifier of each document (SCMD's HashStructure.id), given back with
    # its signature; empty when the request has none (one hash, CSC, the personal area).
    document_ids = models.JSONField(default=list, blank=True)
    # Base64 of each digest; empty for a CSC request until credentials/authorize names them.
    hashes = models.JSONField(default=list)
    hash_algorithm = models.CharField(max_length=16, default="sha256")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CODE_SENT)
    created_at = models.DateTimeField()
    sad_hash = models.CharField(max_length=64, blank=True, db_index=True)
    sad_expires_at = models.DateTimeField(null=True, blank=True)
    signed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["credential", "via", "client_id", "-created_at"])]

    def __str__(self) -> str:
        return f"signing request {self.process_id} ({self.status})"

    @property
    def code_transaction(self) -> str:
        return f"signing-{self.process_id}"
