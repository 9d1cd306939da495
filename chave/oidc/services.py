"""Operations of the OpenID Connect provider: registering portals as OpenID Connect clients (their
redirect URIs, keys or secret), the OIDC form of the login decision, and the tokens it issued.

The registry's decisions, consent and single sign-on are the federation's
(:mod:`chave.federation.services`), shared with SAML.

Every write goes through here; views, the ``chave rp`` command and the admin call these.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from authlib.oauth2.rfc6749 import InvalidRequestError
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.translation import gettext_lazy as _

from chave import clock
from chave.audit import services as audit
from chave.federation import services as federation
from chave.federation.services import REASON_MAX_LENGTH, LoginDecision, check_reason

from . import claims as claims_module
from chave.federation.models import RelyingParty, RelyingPartyEvent, token_hash

from .models import ClientSettings, Token

# --- Registry ---------------------------------------------------------------------------------

# A DNS host name, lower case (the sector identifier of pairwise subjects).
_HOST = re.compile(r"^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")
_LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# JWK members that only a private (or symmetric) key has: a party registers public keys only.
_PRIVATE_JWK_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}


def _check_uri(uri: str) -> str:
    """An absolute https:// address (http:// only on this machine), no fragment, at most 500 characters."""
    from urllib.parse import urlsplit

    if not isinstance(uri, str) or not uri or len(uri) > 500:
        raise ValidationError(_("This address is empty or longer than 500 characters."), code="uri_invalid")
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        parts.port  # noqa: B018 - a malformed port raises here
    except ValueError:
        raise ValidationError(_("This is not a valid address: %(uri)s"), code="uri_invalid", params={"uri": uri})
    if parts.scheme not in ("https", "http") or not host or (parts.scheme == "http" and host not in _LOCAL_HOSTS):
        raise ValidationError(_("Use an https:// address (http:// only for localhost): %(uri)s"), code="uri_invalid",
                              params={"uri": uri})
    if parts.fragment or "#" in uri:
        raise ValidationError(_("An address with a #fragment is not allowed: %(uri)s"), code="uri_invalid",
                              params={"uri": uri})
    return uri


def _check_jwks(jwks) -> dict:
    """A key set of public signing keys (RSA or EC); refuses private and symmetric keys."""
    from joserfc.jwk import KeySet

    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        raise ValidationError(_("The JWKS must be a JSON object with a non-empty \"keys\" list."), code="jwks_invalid")
    if any(not isinstance(k, dict) for k in jwks["keys"]):
        raise ValidationError(_("The JWKS is not a valid key set."), code="jwks_invalid")
    if any(_PRIVATE_JWK_MEMBERS & set(k) for k in jwks["keys"]):
        raise ValidationError(_("The JWKS holds a private or secret key: register only the public keys."),
                              code="jwks_private")
    if any(k.get("kty") not in ("RSA", "EC") for k in jwks["keys"]):
        raise ValidationError(_("The JWKS may hold only RSA or EC public keys."), code="jwks_invalid")
    try:
        KeySet.import_key_set(jwks)
    except Exception:  # noqa: BLE001 - any malformed key set is the same refusal
        raise ValidationError(_("The JWKS is not a valid key set."), code="jwks_invalid")
    return jwks


def _check_sector(sector_identifier: str) -> str:
    host = str(sector_identifier or "").strip().lower()
    if host and not _HOST.match(host):
        raise ValidationError(_("The sector identifier is a host name, such as portal.example.gov.pt."),
                              code="sector_invalid")
    return host


def _key_auth_errors(jwks, jwks_uri: str) -> dict[str, list[ValidationError]]:
    """Problems with the keys of a ``private_key_jwt`` party: exactly one of a JWKS or its URI."""
    if bool(jwks) == bool(jwks_uri):
        return {"jwks": [ValidationError(_("private_key_jwt needs either a JWKS or a JWKS URI (one of the two)."),
                                         code="jwks_required")]}
    try:
        _check_jwks(jwks) if jwks else _check_uri(jwks_uri)
    except ValidationError as exc:
        return {"jwks" if jwks else "jwks_uri": [exc]}
    return {}


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
    offline_access: bool = False,
    resource_server: bool = False,
    profile: str = "oidc",
    require_pushed_authorization_requests: bool = False,
    require_dpop: bool = False,
    sector_identifier_uri: str = "",
    frontchannel_logout_uri: str = "",
    by: str = "operator",
) -> Registration:
    """Record a portal's request to integrate (state ``requested``; :func:`decide` approves it).

    Returns the party and, for ``client_secret_basic``, its secret: shown this once, stored only
    as a hash. Raises one ``ValidationError`` listing every problem by field (``error_dict``:
    ``name``, ``entity_nif``, ``contact_email``, ``redirect_uris``, ``post_logout_redirect_uris``,
    ``backchannel_logout_uri``, ``allowed_attributes``, ``mandatory_attributes``, ``min_level``,
    ``auth_method``, ``jwks``, ``jwks_uri``, ``sector_identifier``, ``subject_type``,
    ``id_token_alg``); nothing is written then.

    OpenID Connect settings of :class:`~chave.oidc.models.ClientSettings`: ``offline_access``
    (refresh tokens when the portal asks for ``offline_access``), ``resource_server`` (it may
    introspect access tokens), ``profile`` (``oidc``, or ``fapi2`` for the FAPI 2.0 Security
    Profile: ``private_key_jwt`` and ES256 ID tokens required, and with them pushed requests and
    DPoP), ``require_pushed_authorization_requests``, ``require_dpop`` (errors under ``profile``,
    ``id_token_alg``, ``auth_method``), ``frontchannel_logout_uri``, and ``sector_identifier_uri``.

    Pairwise subjects (OpenID Connect Core §8.1): the sector is the host of every redirect URI, or
    the host of ``sector_identifier_uri``, a JSON list that must hold every redirect URI (fetched
    and checked when the portal is approved: :func:`check_sector_before_approval`). A
    ``sector_identifier`` naming another host is refused (``sector_not_redirect_host``): it would
    let a portal share another sector's subjects.
    """
    errors: dict[str, list[ValidationError]] = {}

    def check(field_name, function, *args):
        try:
            return function(*args)
        except ValidationError as exc:
            errors.setdefault(field_name, []).append(exc)
            return None

    name, entity_nif, contact_email, allowed_attributes, mandatory_attributes, level = federation.check_registration(
        errors, name=name, entity_nif=entity_nif, contact_email=contact_email, allowed_attributes=allowed_attributes,
        mandatory_attributes=mandatory_attributes, min_level=min_level)
    # The addresses are reported right after the entity's identity, before its attributes.
    identity_errors = {f: errors.pop(f) for f in ("name", "entity_nif", "contact_email") if f in errors}
    other_errors = errors
    errors = identity_errors
    redirect_uris = list(dict.fromkeys(redirect_uris or []))
    if not redirect_uris:
        errors["redirect_uris"] = [ValidationError(_("Give at least one redirect URI."), code="redirect_uri_required")]
    for uri in redirect_uris:
        check("redirect_uris", _check_uri, uri)
    post_logout_redirect_uris = list(dict.fromkeys(post_logout_redirect_uris or []))
    for uri in post_logout_redirect_uris:
        check("post_logout_redirect_uris", _check_uri, uri)
    if backchannel_logout_uri:
        check("backchannel_logout_uri", _check_uri, backchannel_logout_uri)
    errors.update(other_errors)
    if auth_method not in RelyingParty.AuthMethod.values:
        errors["auth_method"] = [ValidationError(_("Client authentication is private_key_jwt or client_secret_basic."),
                                                 code="auth_invalid")]
    elif auth_method == RelyingParty.AuthMethod.PRIVATE_KEY_JWT:
        errors.update(_key_auth_errors(jwks, jwks_uri))
    elif jwks or jwks_uri:
        errors["jwks"] = [ValidationError(_("A client_secret_basic portal has no keys: leave out the JWKS."),
                                          code="jwks_unexpected")]
    sector_identifier = check("sector_identifier", _check_sector, sector_identifier)
    if sector_identifier_uri:
        check("sector_identifier_uri", _check_uri, sector_identifier_uri)
    if frontchannel_logout_uri:
        check("frontchannel_logout_uri", _check_uri, frontchannel_logout_uri)
    if subject_type not in ("pairwise", "public"):
        errors["subject_type"] = [ValidationError(_("The subject type is pairwise or public."),
                                                  code="subject_type_invalid")]
    elif not errors.keys() & {"redirect_uris", "sector_identifier", "sector_identifier_uri"}:
        from urllib.parse import urlsplit

        hosts = {urlsplit(u).hostname for u in redirect_uris}
        if sector_identifier_uri:
            uri_host = urlsplit(sector_identifier_uri).hostname
            if sector_identifier and sector_identifier != uri_host:
                errors["sector_identifier"] = [ValidationError(
                    _("With a sector_identifier_uri the sector is its host (%(host)s)."), code="sector_not_uri_host",
                    params={"host": uri_host})]
            sector_identifier = uri_host
        elif sector_identifier and hosts != {sector_identifier}:
            # Core §8.1: any other host could be another portal's sector, and so its subjects.
            errors["sector_identifier"] = [ValidationError(
                _("The sector identifier must be the host of every redirect URI (%(hosts)s); for a sector of several "
                  "hosts, register a sector_identifier_uri listing the redirect URIs."),
                code="sector_not_redirect_host", params={"hosts": ", ".join(sorted(hosts))})]
        elif subject_type == "pairwise" and not sector_identifier and len(hosts) > 1:
            # OpenID Connect Core §8.1: the pairwise subject must not depend on which host came first.
            errors["sector_identifier"] = [ValidationError(
                _("The redirect URIs are on several hosts (%(hosts)s): register a sector_identifier_uri listing "
                  "them, whose host is the sector their pairwise subjects share."), code="sector_required",
                params={"hosts": ", ".join(sorted(hosts))})]
    if id_token_alg not in ("RS256", "ES256"):
        errors["id_token_alg"] = [ValidationError(_("ID tokens are signed with RS256 or ES256."), code="alg_invalid")]
    if profile not in ClientSettings.Profile.values:
        errors["profile"] = [ValidationError(_("The profile is oidc or fapi2."), code="profile_invalid")]
    elif profile == ClientSettings.Profile.FAPI2:
        # FAPI 2.0 Security Profile §5.4: PS256, ES256 or EdDSA signatures; client authentication by keys.
        if auth_method != RelyingParty.AuthMethod.PRIVATE_KEY_JWT:
            errors.setdefault("auth_method", []).append(ValidationError(
                _("A FAPI 2.0 portal authenticates with private_key_jwt."), code="fapi2_auth"))
        if id_token_alg != "ES256":
            errors.setdefault("id_token_alg", []).append(ValidationError(
                _("A FAPI 2.0 portal gets ES256 ID tokens (FAPI 2.0 does not allow RS256)."), code="fapi2_alg"))
    if errors:
        raise ValidationError(errors)

    secret = secrets.token_urlsafe(32) if auth_method == RelyingParty.AuthMethod.CLIENT_SECRET_BASIC else None
    now = clock.now()
    with transaction.atomic():
        relying_party = RelyingParty.objects.create(
            client_id="chave-" + secrets.token_hex(12),
            name=name, entity_nif=entity_nif, contact_email=contact_email,
            redirect_uris=redirect_uris, post_logout_redirect_uris=post_logout_redirect_uris,
            backchannel_logout_uri=backchannel_logout_uri or "",
            allowed_attributes=allowed_attributes, mandatory_attributes=mandatory_attributes,
            min_level=level, auth_method=auth_method,
            jwks=jwks if auth_method == RelyingParty.AuthMethod.PRIVATE_KEY_JWT and jwks else None,
            jwks_uri=jwks_uri if auth_method == RelyingParty.AuthMethod.PRIVATE_KEY_JWT else "",
            client_secret_hash=token_hash(secret) if secret else "",
            sector_identifier=sector_identifier, subject_type=subject_type, id_token_alg=id_token_alg,
            created_at=now, state_changed_at=now,
        )
        ClientSettings.objects.create(
            relying_party=relying_party, offline_access=bool(offline_access), resource_server=bool(resource_server),
            profile=profile, require_pushed_authorization_requests=bool(require_pushed_authorization_requests),
            require_dpop=bool(require_dpop), sector_identifier_uri=sector_identifier_uri or "",
            frontchannel_logout_uri=frontchannel_logout_uri or "")
        RelyingPartyEvent.objects.create(relying_party=relying_party, at=now, action="requested", by=by)
        audit.record("rp.register", outcome="ok", client_id=relying_party.client_id, by=by)
    return Registration(relying_party, secret)


def rotate_client_secret(relying_party: RelyingParty, *, by: str, reason: str = "") -> Registration:
    """Give a ``client_secret_basic`` party a new secret; the old one stops working at once.

    Returns the party and the new secret (shown this once, stored only as a hash). Recorded in the
    party's history (``secret_rotated``) and audited. Raises ``ValidationError`` (code
    ``no_secret``) for a ``private_key_jwt`` party, which has keys instead.
    """
    reason = check_reason(reason)
    secret = secrets.token_urlsafe(32)
    now = clock.now()
    with transaction.atomic():
        relying_party = RelyingParty.objects.select_for_update().get(pk=relying_party.pk)
        if relying_party.auth_method != RelyingParty.AuthMethod.CLIENT_SECRET_BASIC:
            raise ValidationError(_("This portal authenticates with private_key_jwt: it has no secret to rotate "
                                    "(change its keys instead)."), code="no_secret")
        relying_party.client_secret_hash = token_hash(secret)
        relying_party.save(update_fields=["client_secret_hash"])
        RelyingPartyEvent.objects.create(relying_party=relying_party, at=now, action="secret_rotated", by=by,
                                         reason=reason)
        audit.record("rp.secret_rotated", outcome="ok", client_id=relying_party.client_id, by=by)
    return Registration(relying_party, secret)


def set_relying_party_keys(relying_party: RelyingParty, *, jwks: dict | None = None, jwks_uri: str = "",
                           by: str, reason: str = "") -> RelyingParty:
    """Replace a ``private_key_jwt`` party's public keys: a JWKS, or the URI it publishes them at.

    Client assertions signed with keys no longer registered are refused from then on (a JWKS URI
    is re-read within the fetch cache's five minutes). Recorded (``keys_changed``) and audited with
    the key ids. Raises ``ValidationError`` (by field, as :func:`register_relying_party`; code
    ``no_keys`` for a ``client_secret_basic`` party).
    """
    reason = check_reason(reason)
    errors = _key_auth_errors(jwks, jwks_uri)
    if errors:
        raise ValidationError(errors)
    now = clock.now()
    with transaction.atomic():
        relying_party = RelyingParty.objects.select_for_update().get(pk=relying_party.pk)
        if relying_party.auth_method != RelyingParty.AuthMethod.PRIVATE_KEY_JWT:
            raise ValidationError(_("This portal authenticates with a client secret: it has no keys to change "
                                    "(rotate its secret instead)."), code="no_keys")
        relying_party.jwks, relying_party.jwks_uri = (jwks or None), ("" if jwks else jwks_uri)
        relying_party.save(update_fields=["jwks", "jwks_uri"])
        detail = jwks_uri or ", ".join(str(k.get("kid") or "?") for k in jwks["keys"])
        RelyingPartyEvent.objects.create(relying_party=relying_party, at=now, action="keys_changed", by=by,
                                         reason=" — ".join(filter(None, [reason, detail]))[:REASON_MAX_LENGTH])
        audit.record("rp.keys_changed", outcome="ok", client_id=relying_party.client_id, by=by,
                     jwks_uri=jwks_uri or None, kids=[k.get("kid") for k in jwks["keys"]] if jwks else None)
    return relying_party


SETTINGS = ("profile", "offline_access", "always_refresh", "resource_server", "require_pushed_authorization_requests",
            "require_dpop", "frontchannel_logout_uri", "sector_identifier_uri")


URI_SETTINGS = ("frontchannel_logout_uri", "sector_identifier_uri")


def _check_sector_uri_change(relying_party: RelyingParty, uri: str) -> None:
    """A portal's ``sector_identifier_uri`` may change only within its sector: another host would
    change every pairwise subject it holds (or hand it another sector's). Added or changed on an
    approved portal, the document is read at once and must list every redirect URI (as at approval);
    removed, the redirect URIs must all be on the sector's host."""
    from urllib.parse import urlsplit

    sector = relying_party.sector
    if uri:
        _check_uri(uri)
        if urlsplit(uri).hostname != sector:
            raise ValidationError(
                _("The sector_identifier_uri must be on the portal's sector, %(sector)s: another host would change "
                  "the subjects the portal knows its citizens by."), code="sector_uri_other_sector",
                params={"sector": sector})
        if relying_party.is_approved:
            _check_sector_document(relying_party, uri)
    elif relying_party.subject_type == "pairwise":
        hosts = {urlsplit(u).hostname for u in relying_party.redirect_uris}
        if hosts != {sector}:
            raise ValidationError(
                _("The redirect URIs are not all on the sector's host (%(sector)s): the portal needs its "
                  "sector_identifier_uri."), code="sector_uri_needed", params={"sector": sector})


def set_client_settings(relying_party: RelyingParty, *, by: str, reason: str = "", **changes) -> ClientSettings:
    """Change a portal's OpenID Connect settings (:data:`SETTINGS`: ``profile``, ``offline_access``,
    ``always_refresh``, ``resource_server``, ``require_pushed_authorization_requests``, ``require_dpop``,
    ``frontchannel_logout_uri``, ``sector_identifier_uri``); those not given stay. A
    ``sector_identifier_uri`` stays on the portal's sector and, on an approved portal, is read at
    once (:func:`_check_sector_uri_change`). Takes effect at the portal's next request
    (refresh tokens already issued stay valid). Recorded in the party's history
    (``settings_changed``, with what changed) and audited. Raises ``ValidationError`` by field
    (the same rules as :func:`register_relying_party`: a FAPI 2.0 portal needs ``private_key_jwt``
    and ES256 ID tokens; a URI must be https://) or ``TypeError`` for an unknown setting."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    reason = check_reason(reason)
    errors: dict[str, list[ValidationError]] = {}
    if "profile" in changes:
        if changes["profile"] not in ClientSettings.Profile.values:
            errors["profile"] = [ValidationError(_("The profile is oidc or fapi2."), code="profile_invalid")]
        elif changes["profile"] == ClientSettings.Profile.FAPI2 and (
                relying_party.auth_method != RelyingParty.AuthMethod.PRIVATE_KEY_JWT or relying_party.id_token_alg != "ES256"):
            errors["profile"] = [ValidationError(
                _("A FAPI 2.0 portal authenticates with private_key_jwt and gets ES256 ID tokens."), code="fapi2_client")]
    if changes.get("frontchannel_logout_uri"):
        try:
            _check_uri(changes["frontchannel_logout_uri"])
        except ValidationError as exc:
            errors["frontchannel_logout_uri"] = [exc]
    if "sector_identifier_uri" in changes:
        try:
            _check_sector_uri_change(relying_party, changes["sector_identifier_uri"] or "")
        except ValidationError as exc:
            errors["sector_identifier_uri"] = exc.error_list
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        relying_party = RelyingParty.objects.select_for_update().get(pk=relying_party.pk)
        row, _created = ClientSettings.objects.get_or_create(relying_party=relying_party)
        changed = {}
        for name, value in changes.items():
            if name in URI_SETTINGS:
                value = value or ""
            elif name != "profile":
                value = bool(value)
            if getattr(row, name) != value:
                setattr(row, name, value)
                changed[name] = value
        if changed:
            row.save()
            detail = ", ".join(f"{name}={value}" for name, value in changed.items())
            RelyingPartyEvent.objects.create(relying_party=relying_party, at=clock.now(), action="settings_changed",
                                             by=by, reason=" — ".join(filter(None, [reason, detail]))[:REASON_MAX_LENGTH])
            audit.record("rp.settings_changed", outcome="ok", client_id=relying_party.client_id, by=by, **changed)
    return row


SECTOR_DOCUMENT_MAX_BYTES = 64 * 1024


def fetch_sector_redirect_uris(uri: str) -> list[str]:
    """The JSON array of redirect URIs at a ``sector_identifier_uri`` (Core §5 of Dynamic Client
    Registration). Raises ``ValidationError`` when it cannot be read or is not such an array."""
    import json
    import urllib.request

    from django.conf import settings

    try:
        with urllib.request.urlopen(uri, timeout=settings.CHAVE_HTTP_TIMEOUT) as response:  # noqa: S310 - registered https URI
            data = json.loads(response.read(SECTOR_DOCUMENT_MAX_BYTES + 1)[:SECTOR_DOCUMENT_MAX_BYTES])
    except (OSError, ValueError) as exc:
        raise ValidationError(_("The sector_identifier_uri %(uri)s could not be read (%(error)s)."),
                              code="sector_uri_unreadable",
                              params={"uri": uri, "error": exc.__class__.__name__}) from exc
    if not isinstance(data, list) or not all(isinstance(item, str) for item in data):
        raise ValidationError(_("The sector_identifier_uri %(uri)s does not hold a JSON list of redirect URIs."),
                              code="sector_uri_invalid", params={"uri": uri})
    return data


def check_sector_before_approval(sender, *, relying_party: RelyingParty, **kwargs) -> None:
    """Receiver of :data:`chave.federation.signals.approving`: a portal with a
    ``sector_identifier_uri`` is approved only when that document lists every redirect URI it
    registered (Core §8.1). Raises ``ValidationError`` (``sector_uri_unreadable``,
    ``sector_uri_invalid``, ``sector_uri_mismatch``)."""
    from .models import client_settings

    uri = client_settings(relying_party).sector_identifier_uri
    if uri:
        _check_sector_document(relying_party, uri)


def _check_sector_document(relying_party: RelyingParty, uri: str) -> None:
    listed = set(fetch_sector_redirect_uris(uri))
    missing = [u for u in relying_party.redirect_uris if u not in listed]
    if missing:
        raise ValidationError(_("The sector_identifier_uri does not list these redirect URIs: %(uris)s."),
                              code="sector_uri_mismatch", params={"uris": ", ".join(missing)})


# --- The OpenID Connect form of the login decision ---------------------------------------------

# max_age is a count of seconds written in decimal digits; ten digits (centuries) is more than any
# session lives, and bounds what a datetime can be asked to subtract.
_MAX_AGE = re.compile(r"[0-9]{1,10}")


def parse_max_age(raw) -> int | None:
    """``max_age`` as seconds, or None when absent. Raises ``InvalidRequestError`` when malformed."""
    if raw in (None, ""):
        return None
    if not isinstance(raw, str) or not _MAX_AGE.fullmatch(raw):
        raise InvalidRequestError("'max_age' must be a whole number of seconds.")
    return int(raw)


def required_level(relying_party: RelyingParty, data: dict, claims_request: dict | None = None) -> int:
    """The level the login must reach: the party's registered minimum, raised (never lowered) by
    the lowest level the request names in ``acr_values`` or in the ``claims`` parameter's
    ``id_token.acr`` (``value``/``values``). Unknown ACR values are ignored (they are voluntary)."""
    named = claims_module.levels_from_acr_values(data.get("acr_values"))
    acr = ((claims_request or {}).get("id_token") or {}).get("acr")
    if isinstance(acr, dict):
        values = acr.get("values") if isinstance(acr.get("values"), list) else [acr.get("value")]
        named += claims_module.levels_from_acr_values(" ".join(v for v in values if isinstance(v, str)))
    return federation.required_level(relying_party, named)


def login_decision(relying_party: RelyingParty, who, data: dict, *, pending: dict | None, query: str,
                   claims_request: dict | None = None) -> LoginDecision:
    """:func:`chave.federation.services.login_decision` for an authorization request: the level
    from :func:`required_level`, ``prompt=login`` as a fresh login, ``max_age``, and the request
    identified by its query string. Raises ``InvalidRequestError`` for a malformed ``max_age``."""
    return federation.login_decision(
        relying_party, who, required=required_level(relying_party, data, claims_request),
        fresh_login="login" in set((data.get("prompt") or "").split()),
        max_age=parse_max_age(data.get("max_age")), pending=pending, request_key=query,
    )


# --- Tokens --------------------------------------------------------------------------------------


def revoke_tokens(citizen, relying_party: RelyingParty | None = None) -> int:
    """Revoke the live access and refresh tokens issued for the citizen's keys (to one portal, when
    given); returns how many. The caller audits."""
    tokens = Token.objects.filter(key__citizen=citizen, revoked_at__isnull=True)
    if relying_party is not None:
        tokens = tokens.filter(relying_party=relying_party)
    return tokens.update(revoked_at=clock.now())


def revoke_tokens_of_withdrawn_consent(sender, *, citizen, relying_party, **kwargs) -> int:
    """Receiver of :data:`chave.federation.signals.consent_revoked`."""
    return revoke_tokens(citizen, relying_party)
