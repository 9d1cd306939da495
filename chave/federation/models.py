"""The relying-party federation: who may ask Chave to sign citizens in, and what they agreed to.

Shared by every protocol door (OpenID Connect in :mod:`chave.oidc`, SAML 2.0 in :mod:`chave.saml`):
the registry of relying parties and its decisions, the citizens' consent per party, and the single
sign-on sessions that say which parties a browser session served (for logout).

A :class:`RelyingParty` is a Public Administration portal; only an ``approved`` one can start a
login. Its OpenID Connect client registration (redirect URIs, keys or secret hash, ID-token
algorithm) lives on the same row, because Authlib reads the registry row as its client; a
protocol's other details live in that protocol's app. The tables keep the names they had when the
registry was part of ``chave.oidc`` (``oidc_*``).
"""

from __future__ import annotations

import hashlib
import hmac
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
        db_table = "oidc_relyingparty"
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
        from chave.oidc.claims import allowed_scope

        return allowed_scope(self, scope)

    def check_redirect_uri(self, redirect_uri):
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret):
        if not self.client_secret_hash or not isinstance(client_secret, str):
            return False
        return hmac.compare_digest(token_hash(client_secret), self.client_secret_hash)

    def check_endpoint_auth_method(self, method, endpoint):
        # Wherever a client authenticates (token, revocation, introspection, pushed requests): as registered.
        return method == self.auth_method

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
        SETTINGS_CHANGED = "settings_changed", _("protocol settings changed")

    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField()
    action = models.CharField(max_length=32, choices=Action.choices)
    by = models.CharField(max_length=150)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        db_table = "oidc_relyingpartyevent"
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

    class Meta:
        db_table = "oidc_ssosession"


class Consent(models.Model):
    """What a citizen agreed to share with a portal; revocable from the personal area."""

    citizen = models.ForeignKey("identity.Citizen", on_delete=models.CASCADE, related_name="consents")
    relying_party = models.ForeignKey(RelyingParty, on_delete=models.CASCADE, related_name="consents")
    granted = models.JSONField(default=list)
    refused = models.JSONField(default=list)
    updated_at = models.DateTimeField()

    class Meta:
        db_table = "oidc_consent"
        constraints = [models.UniqueConstraint(fields=["citizen", "relying_party"], name="consent_one_per_party")]
