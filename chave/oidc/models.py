"""What the OpenID Connect provider issues to relying parties.

The relying parties themselves, their consent records and single sign-on sessions are the
federation's (:mod:`chave.federation.models`), shared with the SAML door. Codes and tokens are
stored as SHA-256 hashes (they are long random strings, so a plain hash suffices); signing keys
are sealed at rest.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _

from chave.federation.models import RelyingParty, SsoSession, token_hash  # noqa: F401 - token_hash for oidc's callers


class AuthorizationCode(models.Model):
    code_hash = models.CharField(max_length=64, unique=True)
    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE)
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE)
    sso_session = models.ForeignKey(SsoSession, null=True, on_delete=models.SET_NULL)
    redirect_uri = models.CharField(max_length=500)
    scope = models.CharField(max_length=500)
    attributes = models.JSONField(default=list)  # what the citizen agreed to share
    withheld = models.JSONField(default=list)
    claims_request = models.JSONField(null=True, blank=True)
    nonce = models.CharField(max_length=255, blank=True)
    code_challenge = models.CharField(max_length=128)
    code_challenge_method = models.CharField(max_length=8)
    acr = models.CharField(max_length=64)
    amr = models.JSONField(default=list)
    auth_time = models.DateTimeField()
    # DPoP authorization code binding (RFC 9449 §10): the key the tokens must be bound to.
    dpop_jkt = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    # --- Authlib's AuthorizationCodeMixin -------------------------------------------------
    def get_redirect_uri(self):
        return self.redirect_uri

    def get_scope(self):
        return self.scope

    def get_nonce(self):
        return self.nonce or None

    def get_auth_time(self):
        return int(self.auth_time.timestamp())

    def get_acr(self):
        return self.acr

    def get_amr(self):
        return list(self.amr)


class Token(models.Model):
    access_token_hash = models.CharField(max_length=64, unique=True)
    refresh_token_hash = models.CharField(max_length=64, unique=True, null=True, blank=True)
    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE)
    key = models.ForeignKey("identity.Key", null=True, blank=True, on_delete=models.CASCADE)
    sso_session = models.ForeignKey(SsoSession, null=True, blank=True, on_delete=models.SET_NULL)
    code = models.ForeignKey(AuthorizationCode, null=True, blank=True, on_delete=models.SET_NULL)
    scope = models.CharField(max_length=500)
    attributes = models.JSONField(default=list)
    withheld = models.JSONField(default=list)
    acr = models.CharField(max_length=64, blank=True)
    auth_time = models.DateTimeField(null=True, blank=True)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    refresh_expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # DPoP (RFC 9449): the thumbprint of the key the tokens are bound to; empty for bearer tokens.
    dpop_jkt = models.CharField(max_length=64, blank=True)

    @property
    def token_type(self) -> str:
        return "DPoP" if self.dpop_jkt else "Bearer"

    # --- Authlib's TokenMixin -------------------------------------------------------------
    def check_client(self, client):
        return client.pk == self.relying_party_id

    def get_scope(self):
        return self.scope

    def get_expires_in(self):
        return int((self.expires_at - self.issued_at).total_seconds())

    def is_revoked(self):
        return self.revoked_at is not None

    def is_expired(self):
        from chave import clock

        return self.expires_at <= clock.now()

    def get_user(self):
        return self.key

    def get_client(self):
        return self.relying_party


class ClientAssertion(models.Model):
    """A ``jti`` of a ``private_key_jwt`` assertion already used (replay protection)."""

    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE)
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["relying_party", "jti"], name="client_assertion_jti_once")]


class SigningKey(models.Model):
    """A key the provider signs ID tokens and logout tokens with.

    The active key of each algorithm signs; a new key is published before it signs (until
    ``activates_at``), and a retired key stays in the JWKS until what it signed has expired
    (``retired_at`` + ``oidc_key_retention_seconds``).
    """

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=8)  # RS256 | ES256
    private_jwk_sealed = models.TextField()
    public_jwk = models.JSONField()
    created_at = models.DateTimeField()
    # A rotated-in key is published first and signs only from this time (None: since it was made);
    # the key it replaces is retired at that same time (``retired_at`` may lie in the future).
    activates_at = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one active (unretired) key per algorithm, even when two first callers race.
            models.UniqueConstraint(fields=["alg"], condition=models.Q(retired_at__isnull=True),
                                    name="signing_key_one_active_per_alg"),
        ]


class BackchannelLogout(models.Model):
    """One logout token to send to one portal when an SSO session ends (Back-Channel Logout 1.0),
    or one SOAP ``LogoutRequest`` to a SAML service provider.

    Written with its task in the transaction that ends the session; the worker claims it
    (``queued → sending``) before each POST, so it is delivered at most once per claim, and
    retries with backoff while the portal is unreachable or answers 5xx. The token itself is
    made at each attempt and never stored. A claim left by a worker that died is sent again by
    :func:`chave.oidc.logout.recover_stalled_logouts` (a second logout token ends nothing more).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("queued")
        SENDING = "sending", _("sending")
        DELIVERED = "delivered", _("delivered")
        FAILED = "failed", _("failed")

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sso_session = models.ForeignKey(SsoSession, on_delete=models.CASCADE, related_name="backchannel_logouts")
    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE, related_name="backchannel_logouts")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    attempts = models.PositiveIntegerField(default=0)
    last_status = models.PositiveSmallIntegerField(null=True, blank=True)  # the portal's HTTP status
    last_error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # When a worker claimed it (``sending``): a claim far older than a POST may take belongs to a
    # worker that died (:func:`chave.oidc.logout.recover_stalled_logouts`).
    sending_since = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sso_session", "relying_party"],
                                               name="backchannel_logout_once_per_party")]


class ClientSettings(models.Model):
    """A portal's OpenID Connect settings beyond the registry row (one per party, made when first
    changed; a party without one has the defaults of :data:`DEFAULT_CLIENT_SETTINGS`).

    They live here, not on :class:`~chave.federation.models.RelyingParty`: the registry row is the
    federation's, shared with SAML, and keeps only what Authlib reads as its client; these are
    OpenID Connect's own (the SAML door has no use for DPoP or pushed requests).
    """

    class Profile(models.TextChoices):
        OIDC = "oidc", "OpenID Connect"
        FAPI2 = "fapi2", "FAPI 2.0 Security Profile"

    relying_party = models.OneToOneField(RelyingParty, on_delete=models.CASCADE, related_name="oidc_settings")
    profile = models.CharField(max_length=8, choices=Profile.choices, default=Profile.OIDC)
    # Refresh tokens only when the request asks for offline_access (Core §11) and this allows it.
    offline_access = models.BooleanField(default=False)
    # With offline access: a refresh token with every sign-in, asked for or not. What every portal got
    # before these settings existed (migration 0009 keeps it for them); new portals ask for offline_access.
    always_refresh = models.BooleanField(default=False)
    # A resource server: may introspect access tokens issued to other portals (RFC 7662).
    resource_server = models.BooleanField(default=False)
    require_pushed_authorization_requests = models.BooleanField(default=False)
    require_dpop = models.BooleanField(default=False)
    # Pairwise subjects: the JSON list of redirect URIs of the sector (Core §8.1).
    sector_identifier_uri = models.URLField(max_length=500, blank=True)
    frontchannel_logout_uri = models.URLField(max_length=500, blank=True)

    @property
    def fapi2(self) -> bool:
        return self.profile == self.Profile.FAPI2

    @property
    def par_required(self) -> bool:
        return self.require_pushed_authorization_requests or self.fapi2

    @property
    def dpop_required(self) -> bool:
        return self.require_dpop or self.fapi2


def client_settings(relying_party: RelyingParty) -> ClientSettings:
    """The party's settings, or (unsaved) the defaults when none were ever set."""
    try:
        return relying_party.oidc_settings
    except ClientSettings.DoesNotExist:
        return ClientSettings(relying_party=relying_party)


class PushedRequest(models.Model):
    """A pushed authorization request (RFC 9126): the parameters a portal posted, to be used once by
    reference (``request_uri``). It must be first used within ``oidc_par_seconds``; the browser that
    used it keeps it while the citizen signs in, and the code issued from it consumes it."""

    reference_hash = models.CharField(max_length=64, unique=True)
    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE)
    parameters = models.JSONField()
    created_at = models.DateTimeField()
    expires_at = models.DateTimeField()
    first_used_at = models.DateTimeField(null=True, blank=True)
    used_at = models.DateTimeField(null=True, blank=True)


class DpopProof(models.Model):
    """A DPoP proof's ``jti`` already seen (RFC 9449 §11.1: a proof is used once), kept until the
    proof could no longer be accepted."""

    jkt = models.CharField(max_length=64)
    jti = models.CharField(max_length=255)
    expires_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["jkt", "jti"], name="dpop_proof_jti_once")]
