"""Scopes, claims and assurance-level names of the OpenID Connect door.

The attributes themselves (names, labels, values, the identity set, subjects) are the federation's
(:mod:`chave.federation.attributes`), shared with SAML. Where OpenID Connect has a standard claim
it is used (``name``, ``given_name``, ``family_name``, ``birthdate``, ``phone_number``,
``email``); the others are custom claims named by the attribute's URI
(``http://interop.gov.pt/MDC/Cidadao/NIC``, …), collision-resistant and familiar to portals
moving from the national system.

Scopes select groups of attributes; the ``claims`` request parameter selects single claims.
Both are limited to what the party is allowed. Levels of assurance are named by the URIs of
:data:`chave.federation.levels.LEVEL_URIS`.
"""

from __future__ import annotations

from chave.federation.attributes import (
    ATTRIBUTES,
    IDENTITY,
    PREFIX,
    attribute_values,
    identity_set,
)
from chave.federation.levels import level_of, levels_named
from chave.identity.models import Citizen, Key

ATTRIBUTE_STATUS_CLAIM = PREFIX + "AttributeStatus"

# Attribute → claim: the standard OpenID Connect claim where there is one, else the attribute's URI.
CLAIMS = {
    name: {"NomeProprio": "given_name", "NomeApelido": "family_name", "NomeCompleto": "name",
           "DataNascimento": "birthdate", "NumeroTelemovel": "phone_number",
           "CorreioElectronico": "email"}.get(name, attribute.uri)
    for name, attribute in ATTRIBUTES.items()
}
CLAIM_TO_ATTRIBUTE = {claim: name for name, claim in CLAIMS.items()}

# Scope → attributes. "pt:identity" is the minimum identity set: NIC for Portuguese citizens,
# DocType + DocNationality + DocNumber for foreigners (whichever the citizen has).
SCOPES = {
    "openid": [],
    "profile": ["NomeCompleto", "NomeProprio", "NomeApelido", "DataNascimento"],
    "email": ["CorreioElectronico"],
    "phone": ["NumeroTelemovel"],
    "pt:identity": IDENTITY,
    "pt:nif": ["NIF"],
    "pt:signing": ["TemAssinaturaDigitalCMD"],
    "pt:validity": ["DataValidade"],
}

# Core §11: asks for a refresh token, issued only to a portal allowed offline access.
OFFLINE_ACCESS = "offline_access"

# RFC 8176 authentication method references per login method.
# RFC 8176. The Chave app (issue 12): a code pushed to it or made offline is typed ("otp"); an
# approval, or a QR sign-in, is signed with the device's key ("swk"), the PIN typed at the page or in the app.
AMR = {"sms": ["pin", "sms", "mfa"], "app": ["pin", "otp", "mfa"], "email": ["pin", "otp", "mfa"],
       "app_offline": ["pin", "otp", "mfa"], "app_approve": ["pin", "swk", "mfa"], "app_qr": ["pin", "swk", "mfa"],
       "x": ["pin", "otp", "mfa"], "citizen_card": ["sc", "hwk", "pin", "mfa"]}


def scope_list(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split() if s]


def scopes_supported() -> list[str]:
    return [*SCOPES, OFFLINE_ACCESS]


def allowed_scope(relying_party, scope: str | None) -> str:
    """What is granted of the requested scopes (Core §3.1.2.1: the others are ignored, never an
    error): ``openid``, the scopes that give the party at least one attribute it may have, and
    ``offline_access`` when the party is allowed offline access."""
    from .models import client_settings

    allowed = set(relying_party.allowed_attributes)
    kept = []
    for name in scope_list(scope):
        if name == OFFLINE_ACCESS:
            if client_settings(relying_party).offline_access:
                kept.append(name)
        elif name in SCOPES and (name == "openid" or allowed.intersection(SCOPES[name])):
            kept.append(name)
    return " ".join(dict.fromkeys(kept))


def attributes_within(relying_party, scope: str | None, claims_request: dict | None, attributes: list[str],
                      citizen: Citizen | None = None) -> list[str]:
    """Of ``attributes`` (granted at consent), those a token of ``scope`` may release: the ones its
    scopes or the request's ``claims`` parameter asked for (a refresh with a narrower scope)."""
    wanted = set(requested_attributes(relying_party, scope, claims_request, citizen))
    return [name for name in attributes if name in wanted]


IDENTITY_SCOPE = "pt:identity"


def requested_attributes(relying_party, scope: str | None, claims_request: dict | None,
                         citizen: Citizen | None = None) -> list[str]:
    """Attributes asked for by scope and ``claims`` parameter, within the party's allowed set.

    The ``pt:identity`` scope stands for the citizen's own identity set (:func:`identity_set`);
    claims named one by one in the ``claims`` parameter are asked for as named. Claims the
    party is not allowed are left out (never an error: the ``claims`` parameter is voluntary).
    """
    wanted: list[str] = []
    for s in scope_list(scope):
        wanted += identity_set(citizen) if s == IDENTITY_SCOPE else SCOPES.get(s, [])
    for section in ("id_token", "userinfo"):
        for claim in ((claims_request or {}).get(section) or {}):
            if claim in CLAIM_TO_ATTRIBUTE:
                wanted.append(CLAIM_TO_ATTRIBUTE[claim])
    allowed = set(relying_party.allowed_attributes)
    return [a for a in dict.fromkeys(wanted) if a in allowed]


def claims_for(key: Key, attributes: list[str], withheld: list[str], *, only: set[str] | None = None
               ) -> dict[str, object]:
    """The claims released for ``attributes`` (the ones the citizen agreed to share), with the
    status claim :data:`ATTRIBUTE_STATUS_CLAIM` giving each requested attribute as
    ``available``, ``not_available`` (the citizen has no such data) or ``withheld`` (refused at
    consent). ``only`` limits the result to those claim names (the ID token's ``claims`` request).
    """
    values = attribute_values(key)
    claims: dict[str, object] = {}
    status: dict[str, str] = {}
    for name in attributes:
        if only is not None and CLAIMS[name] not in only:
            continue
        if name in values:
            claims[CLAIMS[name]] = values[name]
            status[name] = "available"
        else:
            status[name] = "not_available"
    for name in withheld:
        if only is None or CLAIMS[name] in only:
            status[name] = "withheld"
    if "email" in claims:
        claims["email_verified"] = True
    if "phone_number" in claims:
        claims["phone_number_verified"] = True
    if status:
        claims[ATTRIBUTE_STATUS_CLAIM] = status
    return claims


def levels_from_acr_values(acr_values: str | None) -> list[int]:
    return levels_named((acr_values or "").split())


def essential_acr(claims_request: dict | None) -> list[str] | None:
    """The ``acr`` values the ``claims`` parameter asks for as essential (Core §5.5.1.1), in the
    order given, or None when ``acr`` is not asked for as an essential claim with values."""
    acr = ((claims_request or {}).get("id_token") or {}).get("acr")
    if not isinstance(acr, dict) or acr.get("essential") is not True:
        return None
    values = acr.get("values") if isinstance(acr.get("values"), list) else [acr.get("value")]
    values = [v for v in values if isinstance(v, str) and v]
    return values or None


def acr_meeting(values: list[str], level: int) -> str | None:
    """Of the essential ``values``, the one a login at ``level`` meets most closely: the highest
    level named that is not above ``level`` (a stronger login meets a weaker requirement); None
    when none is met (every value unknown, or above ``level``)."""
    met = [(level_of(v), v) for v in values if level_of(v) is not None and level_of(v) <= level]
    return max(met, key=lambda pair: pair[0])[1] if met else None
