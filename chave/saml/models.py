"""What the SAML 2.0 door keeps: the IdP's signing keys, each service provider's SAML registration
(beside its row in the federation's registry) and the requests it was sent (each answered once).

The relying party itself (name, NIF, contact, attributes, minimum level, approval) is the
federation's :class:`~chave.federation.models.RelyingParty`; only what SAML adds lives here.
"""

from __future__ import annotations

from django.db import models

from chave.federation.models import RelyingParty


class IdpKey(models.Model):
    """A signing key of the IdP: its certificate in clear (published in the metadata), its private
    key sealed at rest (:mod:`chave.sealing`)."""

    kid = models.CharField(max_length=64, unique=True)  # SHA-256 fingerprint of the certificate, hex
    certificate_pem = models.TextField()
    private_key_sealed = models.TextField()
    created_at = models.DateTimeField()
    not_after = models.DateTimeField()
    # Set by a rotation: the key stops signing then, and leaves the metadata a grace period later.
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["retired_at"], condition=models.Q(retired_at__isnull=True),
                                               name="saml_one_signing_key")]


class ServiceProvider(models.Model):
    """A relying party's SAML registration, read from its metadata."""

    relying_party = models.OneToOneField(RelyingParty, on_delete=models.CASCADE, related_name="saml")
    entity_id = models.CharField(max_length=1024, unique=True)
    # [{"url", "binding", "index", "default"}]: where responses may be sent.
    acs = models.JSONField(default=list)
    # [{"url", "binding"}]: the single logout service, when it has one.
    slo = models.JSONField(default=list)
    # The SP's signing certificates (PEM): requests must be signed by one of them.
    certificates = models.JSONField(default=list)
    metadata_xml = models.TextField()
    metadata_url = models.URLField(max_length=500, blank=True)
    updated_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.entity_id

    @property
    def acs_urls(self) -> list[str]:
        return [endpoint["url"] for endpoint in self.acs]


class SeenRequest(models.Model):
    """An AuthnRequest that passed the checks: its ID is answered once (replay refused), and the
    browser carries it to the login by ``reference`` (one use)."""

    service_provider = models.ForeignKey(ServiceProvider, on_delete=models.CASCADE, related_name="requests")
    request_id = models.CharField(max_length=256)
    reference = models.CharField(max_length=64, unique=True)
    parsed = models.JSONField()  # what the view needs: ACS, RelayState, levels, attributes, policies
    received_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    taken_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["service_provider", "request_id"], name="saml_request_once")]
