"""Relying parties, and what the OpenID Connect provider issues to them.

A :class:`RelyingParty` is a Public Administration portal; only an ``approved`` one can start a
login or refresh a token. Codes and tokens are stored as SHA-256 hashes (they are long random
strings, so a plain hash suffices); signing keys are sealed at rest.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid
from urllib.parse import urlsplit

from django.db import models
from django.utils.translation import gettext_lazy as _


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class RelyingParty(models.Model):
    class State(models.TextChoices):
        REQUESTED = "requested", _("requested")
        APPROVED = "approved", _("approved")
        SUSPENDED = "suspended", _("suspended")

    class AuthMethod(models.TextChoices):
        PRIVATE_KEY_JWT = "private_key_jwt", "private_key_jwt"
        CLIENT_SECRET_BASIC = "client_secret_basic", "client_secret_basic"

    client_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    entity_nif = models.CharField(max_length=9)
    contact_email = models.EmailField(max_length=254)
    redirect_uris = models.JSONField(default=list)
    post_logout_redirect_uris = models.JSONField(default=list, blank=True)
    backchannel_logout_uri = models.URLField(max_length=500, blank=True)
    allowed_attributes = models.JSONField(default=list)
    mandatory_attributes = models.JSONField(default=list, blank=True)
    min_level = models.PositiveSmallIntegerField(default=2)
    auth_method = models.CharField(max_length=24, choices=AuthMethod.choices, default=AuthMethod.PRIVATE_KEY_JWT)
    jwks = models.JSONField(null=True, blank=True)
    jwks_uri = models.URLField(max_length=500, blank=True)
    client_secret_hash = models.CharField(max_length=64, blank=True)
    sector_identifier = models.CharField(max_length=255, blank=True)
    subject_type = models.CharField(max_length=8, default="pairwise")  # pairwise | public
    id_token_alg = models.CharField(max_length=8, default="RS256")  # RS256 | ES256
    state = models.CharField(max_length=10, choices=State.choices, default=State.REQUESTED)
    created_at = models.DateTimeField()
    state_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "relying party"
        verbose_name_plural = "relying parties"

    def __str__(self) -> str:
        return f"{self.name} ({self.client_id}, {self.state})"

    @property
    def is_approved(self) -> bool:
        return self.state == self.State.APPROVED

    @property
    def sector(self) -> str:
        """Pairwise subjects are per sector: the registered one, else the redirect URIs' host."""
        if self.sector_identifier:
            return self.sector_identifier
        hosts = sorted({urlsplit(u).hostname or "" for u in self.redirect_uris})
        return hosts[0] if hosts else self.client_id

    # --- Authlib's ClientMixin ------------------------------------------------------------
    def get_client_id(self):
        return self.client_id

    def get_default_redirect_uri(self):
        # The redirect URI is required in every request (no default): exact matching only.
        return None

    def get_allowed_scope(self, scope):
        from .claims import allowed_scope

        return allowed_scope(self, scope)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        if not self.client_secret_hash or not isinstance(client_secret, str):
            return False
        return hmac.compare_digest(token_hash(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        if endpoint == "token":
            return method == self.auth_method
        return True

    def check_response_type(self, response_type):
        return response_type == "code"

    def check_grant_type(self, grant_type):
        return grant_type in {"authorization_code", "refresh_token", "client_credentials"}

    @property
    def id_token_signed_response_alg(self):
        return self.id_token_alg

    @property
    def client_metadata(self):
        # What Authlib's end-session endpoint reads (RP-Initiated Logout §3.1).
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris or [])}


class RelyingPartyEvent(models.Model):
    """The history of a party's registration: requested, approved, suspended, keys rotated."""

    class Action(models.TextChoices):
        REQUESTED = "requested", _("requested")
        APPROVED = "approved", _("approved")
        SUSPENDED = "suspended", _("suspended")
        REINSTATED = "reinstated", _("reinstated")
        SECRET_ROTATED = "secret_rotated", _("client secret rotated")
        KEYS_CHANGED = "keys_changed", _("keys changed")

    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    action = models.CharField(max_length=32, choices=Action.choices)
    by = models.CharField(max_length=150)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]


class SsoSession(models.Model):
    """A citizen's signed-in browser session: which portals it served (for logout)."""

    sid = models.CharField(max_length=64, unique=True)
    key = models.ForeignKey("identity.Key", on_delete=models.CASCADE, related_name="sso_sessions")
    auth_time = models.DateTimeField()
    assurance_level = models.PositiveSmallIntegerField()
    method = models.CharField(max_length=16)
    created_at = models.DateTimeField()
    # When a portal was last served from it: the browser session holding it was written then, so it
    # lapses at the latest one session lifetime later (see logout.end_lapsed_sso_sessions).
    last_used_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    relying_parties = models.ManyToManyField(RelyingParty, blank=True, related_name="sso_sessions")


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


class Consent(models.Model):
    """What a citizen agreed to share with a portal; revocable from the personal area."""

    citizen = models.ForeignKey("identity.Citizen", on_delete=models.CASCADE, related_name="consents")
    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE, related_name="consents")
    granted = models.JSONField(default=list)
    refused = models.JSONField(default=list)
    updated_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["citizen", "relying_party"], name="consent_one_per_party")]


class SigningKey(models.Model):
    """A key the provider signs ID tokens and logout tokens with.

    The active key of each algorithm signs; a retired key stays in the JWKS until what it
    signed has expired (``retired_at`` + ``oidc_key_retention_seconds``).
    """

    kid = models.CharField(max_length=64, unique=True)
    alg = models.CharField(max_length=8)  # RS256 | ES256
    private_jwk_sealed = models.TextField()
    public_jwk = models.JSONField()
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            # At most one active (unretired) key per algorithm, even when two first callers race.
            models.UniqueConstraint(fields=["alg"], condition=models.Q(retired_at__isnull=True),
                                    name="signing_key_one_active_per_alg"),
        ]


class BackchannelLogout(models.Model):
    """One logout token to send to one portal when an SSO session ends (Back-Channel Logout 1.0).

    Written with its task in the transaction that ends the session; the worker claims it
    (``queued → sending``) before each POST, so it is delivered at most once per claim, and
    retries with backoff while the portal is unreachable or answers 5xx. The token itself is
    made at each attempt and never stored.
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
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sso_session", "relying_party"],
                                               name="backchannel_logout_once_per_party")]
