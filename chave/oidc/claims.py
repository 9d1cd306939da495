"""Attributes, scopes, claims, subjects and assurance levels of the provider.

Attributes carry the autenticacao.gov names (``domain.md``). Where OpenID Connect has a standard
claim it is used (``name``, ``given_name``, ``family_name``, ``birthdate``, ``phone_number``,
``email``); the others are custom claims named by the attribute's URI
(``http://interop.gov.pt/MDC/Cidadao/NIC``, …), collision-resistant and familiar to portals
moving from the national system.

Scopes select groups of attributes; the ``claims`` request parameter selects single claims.
Both are limited to what the party is allowed. Levels of assurance are named by the URIs of
:data:`ACR_URIS`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from chave.identity.models import Citizen, ContactKind, DocType, Key

PREFIX = "http://interop.gov.pt/MDC/Cidadao/"
ATTRIBUTE_STATUS_CLAIM = PREFIX + "AttributeStatus"


@dataclass(frozen=True)
class Attribute:
    name: str
    claim: str
    label: object  # lazy translated text


ATTRIBUTES = {
    a.name: a
    for a in [
        Attribute("NIC", PREFIX + "NIC", _("Civil identification number (NIC)")),
        Attribute("NomeProprio", "given_name", _("Given names")),
        Attribute("NomeApelido", "family_name", _("Family names")),
        Attribute("NomeCompleto", "name", _("Full name")),
        Attribute("DataNascimento", "birthdate", _("Date of birth")),
        Attribute("NIF", PREFIX + "NIF", _("Tax number (NIF)")),
        Attribute("NumeroTelemovel", "phone_number", _("Mobile number")),
        Attribute("CorreioElectronico", "email", _("E-mail address")),
        Attribute("DocType", PREFIX + "DocType", _("Type of foreign document")),
        Attribute("DocNationality", PREFIX + "DocNationality", _("Country of the foreign document")),
        Attribute("DocNumber", PREFIX + "DocNumber", _("Number of the foreign document")),
        Attribute("TemAssinaturaDigitalCMD", PREFIX + "TemAssinaturaDigitalCMD", _("Digital signature active")),
        Attribute("DataValidade", PREFIX + "DataValidade", _("Key valid until")),
    ]
}
CLAIM_TO_ATTRIBUTE = {a.claim: a.name for a in ATTRIBUTES.values()}

# Scope → attributes. "pt:identity" is the minimum identity set: NIC for Portuguese citizens,
# DocType + DocNationality + DocNumber for foreigners (whichever the citizen has).
SCOPES = {
    "openid": [],
    "profile": ["NomeCompleto", "NomeProprio", "NomeApelido", "DataNascimento"],
    "email": ["CorreioElectronico"],
    "phone": ["NumeroTelemovel"],
    "pt:identity": ["NIC", "DocType", "DocNationality", "DocNumber"],
    "pt:nif": ["NIF"],
    "pt:signing": ["TemAssinaturaDigitalCMD"],
    "pt:validity": ["DataValidade"],
}

ACR_URIS = {2: "urn:chave:loa:2", 3: "urn:chave:loa:3", 4: "urn:chave:loa:4"}
URI_LEVELS = {uri: level for level, uri in ACR_URIS.items()}
# RFC 8176 authentication method references per login method.
# RFC 8176. The Chave app (issue 12): a code pushed to it or made offline is typed ("otp"); an
# approval, or a QR sign-in, is signed with the device's key ("swk"), the PIN typed at the page or in the app.
AMR = {"sms": ["pin", "sms", "mfa"], "app": ["pin", "otp", "mfa"], "email": ["pin", "otp", "mfa"],
       "app_offline": ["pin", "otp", "mfa"], "app_approve": ["pin", "swk", "mfa"], "app_qr": ["pin", "swk", "mfa"],
       "x": ["pin", "otp", "mfa"], "citizen_card": ["sc", "hwk", "pin", "mfa"]}


def scope_list(scope: str | None) -> list[str]:
    return [s for s in (scope or "").split() if s]


def allowed_scope(relying_party, scope: str | None) -> str:
    """The requested scopes that give the party at least one attribute it may have (and openid)."""
    allowed = set(relying_party.allowed_attributes)
    kept = [s for s in scope_list(scope) if s in SCOPES and (s == "openid" or allowed.intersection(SCOPES[s]))]
    return " ".join(dict.fromkeys(kept))


def unknown_or_forbidden_scopes(relying_party, scope: str | None) -> list[str]:
    allowed = set(relying_party.allowed_attributes)
    return [s for s in scope_list(scope) if s not in SCOPES or (s != "openid" and not allowed.intersection(SCOPES[s]))]


IDENTITY_SCOPE = "pt:identity"
FOREIGN_DOCUMENT = ["DocType", "DocNationality", "DocNumber"]


def identity_set(citizen: Citizen | None) -> list[str]:
    """The minimum identity set of ``domain.md``: NIC for a Portuguese citizen, the foreign
    document (type, country, number) for a foreign resident; all four when the citizen is unknown."""
    if citizen is None:
        return SCOPES[IDENTITY_SCOPE]
    return ["NIC"] if citizen.doc_type == DocType.CITIZEN_CARD else list(FOREIGN_DOCUMENT)


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


def attribute_values(key: Key) -> dict[str, object]:
    """Every attribute the key can provide now (absent when the citizen has no such data)."""
    citizen: Citizen = key.citizen
    values: dict[str, object] = {
        "NomeProprio": citizen.given_name,
        "NomeApelido": citizen.family_name,
        "NomeCompleto": citizen.full_name,
        "DataNascimento": citizen.birth_date.isoformat(),
        "DataValidade": key.valid_until.isoformat(),
        "TemAssinaturaDigitalCMD": False,  # signing arrives with the signing issue
    }
    if citizen.doc_type == DocType.CITIZEN_CARD:
        values["NIC"] = citizen.doc_number
    else:
        values.update(DocType=citizen.doc_type, DocNationality=citizen.doc_country, DocNumber=citizen.doc_number)
    if citizen.nif:
        values["NIF"] = citizen.nif
    for contact in key.contacts.filter(verified_at__isnull=False, live=True):
        if contact.kind == ContactKind.MOBILE:
            values["NumeroTelemovel"] = contact.value
        elif contact.kind == ContactKind.EMAIL:
            values["CorreioElectronico"] = contact.value
    return values


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
        if only is not None and ATTRIBUTES[name].claim not in only:
            continue
        if name in values:
            claims[ATTRIBUTES[name].claim] = values[name]
            status[name] = "available"
        else:
            status[name] = "not_available"
    for name in withheld:
        if only is None or ATTRIBUTES[name].claim in only:
            status[name] = "withheld"
    if "email" in claims:
        claims["email_verified"] = True
    if "phone_number" in claims:
        claims["phone_number_verified"] = True
    if status:
        claims[ATTRIBUTE_STATUS_CLAIM] = status
    return claims


def subject(relying_party, citizen: Citizen) -> str:
    """Pairwise per sector by default (parties cannot correlate citizens); public when registered so."""
    sector = "public" if relying_party.subject_type == "public" else relying_party.sector
    digest = hmac.new(settings.CHAVE_PAIRWISE_SALT.encode(), f"{sector}\x00{citizen.pk}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()


def levels_from_acr_values(acr_values: str | None) -> list[int]:
    return sorted(URI_LEVELS[v] for v in (acr_values or "").split() if v in URI_LEVELS)
