"""Operations of the OpenID Connect provider: the registry of relying parties, login decisions,
consent, single sign-on sessions.

Every write goes through here; views, the ``chave rp`` command and the admin call these.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field

from authlib.oauth2.rfc6749 import InvalidRequestError
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock, policy
from chave.audit import services as audit
from chave.identity.validation import parse_email, parse_nif

from . import claims as claims_module
from .models import Consent, RelyingParty, RelyingPartyEvent, SsoSession, token_hash

SESSION_SSO = "chave.oidc.sso"


# --- Registry ---------------------------------------------------------------------------------


def _check_uri(uri: str, *, field_name: str) -> str:
    from urllib.parse import urlsplit

    if not isinstance(uri, str) or len(uri) > 500:
        raise ValidationError(_("%(field)s: the address is too long.") % {"field": field_name}, code="uri_invalid")
    parts = urlsplit(uri)
    local = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if parts.scheme not in ("https", "http") or (parts.scheme == "http" and not local) or not parts.hostname:
        raise ValidationError(
            _("%(field)s: use an https:// address (http:// only for localhost).") % {"field": field_name},
            code="uri_invalid",
        )
    if parts.fragment:
        raise ValidationError(_("%(field)s: an address with a #fragment is not allowed.") % {"field": field_name},
                              code="uri_invalid")
    return uri


@dataclass
class Registration:
    relying_party: RelyingParty
    client_secret: str | None = None  # shown once, only for client_secret_basic


def register_relying_party(
    *,
    name: str,
    entity_nif: str,
    contact_email: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str] = (),
    backchannel_logout_uri: str = "",
    allowed_attributes: list[str] = (),
    mandatory_attributes: list[str] = (),
    min_level: int | None = None,
    auth_method: str = RelyingParty.AuthMethod.PRIVATE_KEY_JWT,
    jwks: dict | None = None,
    jwks_uri: str = "",
    sector_identifier: str = "",
    subject_type: str = "pairwise",
    id_token_alg: str = "RS256",
    by: str = "operator",
) -> Registration:
    """Record a portal's request to integrate (state ``requested``).

    Raises ``ValidationError`` for a bad NIF, e-mail, URI, attribute, level or key set-up.
    """
    name = " ".join(str(name or "").split())
    if not name or len(name) > 200:
        raise ValidationError(_("Give the entity's name (at most 200 characters)."), code="name_invalid")
    entity_nif = parse_nif(entity_nif)
    contact_email = parse_email(contact_email)
    if not redirect_uris:
        raise ValidationError(_("Give at least one redirect URI."), code="redirect_uri_required")
    redirect_uris = [_check_uri(u, field_name="redirect_uri") for u in dict.fromkeys(redirect_uris)]
    post_logout_redirect_uris = [_check_uri(u, field_name="post_logout_redirect_uri")
                                 for u in dict.fromkeys(post_logout_redirect_uris)]
    if backchannel_logout_uri:
        _check_uri(backchannel_logout_uri, field_name="backchannel_logout_uri")
    unknown = [a for a in [*allowed_attributes, *mandatory_attributes] if a not in claims_module.ATTRIBUTES]
    if unknown:
        raise ValidationError(_("Unknown attributes: %(names)s.") % {"names": ", ".join(unknown)}, code="attribute_unknown")
    if not set(mandatory_attributes) <= set(allowed_attributes):
        raise ValidationError(_("Mandatory attributes must also be allowed."), code="attribute_mandatory")
    level = policy.get("rp_default_min_level") if min_level is None else min_level
    if level not in claims_module.ACR_URIS:
        raise ValidationError(_("The minimum level is 2, 3 or 4."), code="level_invalid")
    if auth_method not in RelyingParty.AuthMethod.values:
        raise ValidationError(_("Client authentication is private_key_jwt or client_secret_basic."), code="auth_invalid")
    if auth_method == RelyingParty.AuthMethod.PRIVATE_KEY_JWT:
        if bool(jwks) == bool(jwks_uri):
            raise ValidationError(_("private_key_jwt needs either a JWKS or a JWKS URI."), code="jwks_required")
        if jwks_uri:
            _check_uri(jwks_uri, field_name="jwks_uri")
        if jwks is not None:
            from joserfc.jwk import KeySet

            try:
                KeySet.import_key_set(jwks)
            except Exception:  # noqa: BLE001 - any malformed key set is the same refusal
                raise ValidationError(_("The JWKS is not a valid key set."), code="jwks_invalid")
    if subject_type not in ("pairwise", "public"):
        raise ValidationError(_("The subject type is pairwise or public."), code="subject_type_invalid")
    if id_token_alg not in ("RS256", "ES256"):
        raise ValidationError(_("ID tokens are signed with RS256 or ES256."), code="alg_invalid")
    secret = secrets.token_urlsafe(32) if auth_method == RelyingParty.AuthMethod.CLIENT_SECRET_BASIC else None
    now = clock.now()
    with transaction.atomic():
        relying_party = RelyingParty.objects.create(
            client_id="chave-" + secrets.token_hex(12),
            name=name, entity_nif=entity_nif, contact_email=contact_email,
            redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
            backchannel_logout_uri=backchannel_logout_uri,
            allowed_attributes=list(dict.fromkeys(allowed_attributes)),
            mandatory_attributes=list(dict.fromkeys(mandatory_attributes)),
            min_level=level, auth_method=auth_method,
            jwks=jwks if auth_method == RelyingParty.AuthMethod.PRIVATE_KEY_JWT else None,
            jwks_uri=jwks_uri if auth_method == RelyingParty.AuthMethod.PRIVATE_KEY_JWT else "",
            client_secret_hash=token_hash(secret) if secret else "",
            sector_identifier=sector_identifier, subject_type=subject_type, id_token_alg=id_token_alg,
            created_at=now, state_changed_at=now,
        )
        RelyingPartyEvent.objects.create(relying_party=relying_party, at=now, action="requested", by=by)
        audit.record("rp.register", outcome="ok", client_id=relying_party.client_id, by=by)
    return Registration(relying_party, secret)


_MOVES = {
    "approve": ({RelyingParty.State.REQUESTED, RelyingParty.State.SUSPENDED}, RelyingParty.State.APPROVED),
    "suspend": ({RelyingParty.State.APPROVED, RelyingParty.State.REQUESTED}, RelyingParty.State.SUSPENDED),
}


_PAST = {"approve": "approved", "suspend": "suspended"}


def decide(relying_party: RelyingParty, action: str, *, by: str, reason: str = "") -> RelyingParty:
    """Approve or suspend a party; suspension stops new logins and token refresh at once."""
    sources, target = _MOVES[action]
    now = clock.now()
    with transaction.atomic():
        relying_party = RelyingParty.objects.select_for_update().get(pk=relying_party.pk)
        if relying_party.state not in sources:
            raise ValidationError(_("A %(state)s portal cannot be %(action)sd.") % {
                "state": relying_party.get_state_display(), "action": action}, code="illegal_state")
        relying_party.state, relying_party.state_changed_at = target, now
        relying_party.save(update_fields=["state", "state_changed_at"])
        RelyingPartyEvent.objects.create(relying_party=relying_party, at=now, action=_PAST[action], by=by,
                                         reason=reason[:500])
        audit.record(f"rp.{action}", outcome="ok", client_id=relying_party.client_id, by=by)
    return relying_party


# --- Login decisions ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginDecision:
    needs_login: bool
    required_level: int
    just_consented: bool = False


def login_decision(relying_party: RelyingParty, who, data: dict, *, pending: dict | None) -> LoginDecision:
    """Whether the citizen must (re)authenticate for this request, and at which level at least.

    The party's registered minimum always applies; ``acr_values`` may ask for more (the lowest
    level listed is what the login must reach). ``prompt=login`` and ``max_age`` ask for a fresh
    login: one completed after this very request sent the citizen to sign in satisfies them.
    Raises ``InvalidRequestError`` for a malformed ``max_age``.
    """
    requested_levels = claims_module.levels_from_acr_values(data.get("acr_values"))
    required = max([relying_party.min_level, *requested_levels[:1]])
    prompts = set((data.get("prompt") or "").split())
    max_age = data.get("max_age")
    if max_age not in (None, ""):
        try:
            max_age = int(max_age)
        except (TypeError, ValueError):
            raise InvalidRequestError("'max_age' must be a number of seconds.")
        if max_age < 0:
            raise InvalidRequestError("'max_age' must be a number of seconds.")
    else:
        max_age = None
    same_request = bool(pending) and pending.get("client_id") == relying_party.client_id
    just_consented = same_request and bool(pending.get("consented"))
    if who is None or who.assurance_level < required:
        return LoginDecision(True, required)
    auth_time = dt.datetime.fromisoformat(who.auth_time)
    fresh_after_request = same_request and auth_time >= dt.datetime.fromisoformat(pending["requested_at"])
    if "login" in prompts and not fresh_after_request:
        return LoginDecision(True, required)
    if max_age is not None and clock.now() - auth_time > dt.timedelta(seconds=max_age) and not fresh_after_request:
        return LoginDecision(True, required)
    return LoginDecision(False, required, just_consented)


# --- Consent ---------------------------------------------------------------------------------


@dataclass
class ConsentState:
    undecided: list[str] = field(default_factory=list)
    granted: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)


def consent_state(citizen, relying_party: RelyingParty, requested: list[str]) -> ConsentState:
    row = Consent.objects.filter(citizen=citizen, relying_party=relying_party).first()
    granted = set(row.granted) if row else set()
    refused = set(row.refused) if row else set()
    state = ConsentState()
    for name in requested:
        if name in granted:
            state.granted.append(name)
        elif name in refused and name not in relying_party.mandatory_attributes:
            state.withheld.append(name)
        else:
            state.undecided.append(name)
    return state


def record_consent(citizen, relying_party: RelyingParty, *, granted: list[str], refused: list[str],
                   remember: bool = True) -> None:
    """Remember what the citizen shared with (and refused to) the portal; merges with earlier."""
    audit.record("oidc.consent", outcome="granted" if remember else "refused", citizen=citizen,
                 client_id=relying_party.client_id, granted=granted, refused=refused)
    if not remember:
        return
    with transaction.atomic():
        row, _ = Consent.objects.select_for_update().get_or_create(
            citizen=citizen, relying_party=relying_party, defaults={"updated_at": clock.now()}
        )
        row.granted = sorted((set(row.granted) - set(refused)) | set(granted))
        row.refused = sorted((set(row.refused) - set(granted)) | set(refused))
        row.updated_at = clock.now()
        row.save()


def revoke_consent(citizen, relying_party: RelyingParty) -> None:
    Consent.objects.filter(citizen=citizen, relying_party=relying_party).delete()
    audit.record("oidc.consent", outcome="revoked", citizen=citizen, client_id=relying_party.client_id)


def consents_of(citizen):
    """The portals the citizen has consented to, with what is shared (for the personal area)."""
    return Consent.objects.filter(citizen=citizen).select_related("relying_party").order_by("relying_party__name")


# --- Single sign-on ------------------------------------------------------------------------------


def sso_session(request, key, who) -> SsoSession:
    """The SSO session of this sign-in, made at the first portal it serves."""
    stored = request.session.get(SESSION_SSO) or {}
    if stored.get("auth_time") == who.auth_time:
        row = SsoSession.objects.filter(sid=stored.get("sid"), ended_at__isnull=True).first()
        if row is not None:
            return row
    row = SsoSession.objects.create(
        sid=secrets.token_urlsafe(24), key=key, auth_time=dt.datetime.fromisoformat(who.auth_time),
        assurance_level=who.assurance_level, method=who.method, created_at=clock.now(),
    )
    request.session[SESSION_SSO] = {"sid": row.sid, "auth_time": who.auth_time}
    return row


def record_authorization(relying_party: RelyingParty, key, who, request) -> None:
    from chave.login.services import client_ip

    audit.record("oidc.authorize", outcome="ok", citizen=key.citizen, channel=who.method, ip=client_ip(request),
                 client_id=relying_party.client_id, portal=relying_party.name, level=who.assurance_level)
