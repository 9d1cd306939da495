"""The citizen attributes a relying party may receive, whatever the protocol.

Attributes carry the autenticacao.gov names (``domain.md``) and are identified on the wire by
their URI (``http://interop.gov.pt/MDC/Cidadao/<name>``): SAML uses it as the attribute name,
OpenID Connect maps each to a standard claim where one exists (:mod:`chave.oidc.claims`).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from chave import formats
from chave.identity.models import Citizen, ContactKind, DocType, Key

PREFIX = "http://interop.gov.pt/MDC/Cidadao/"


@dataclass(frozen=True)
class Attribute:
    name: str
    label: object  # lazy translated text

    @property
    def uri(self) -> str:
        return PREFIX + self.name


ATTRIBUTES = {
    a.name: a
    for a in [
        Attribute("NIC", _("Civil identification number (NIC)")),
        Attribute("NomeProprio", _("Given names")),
        Attribute("NomeApelido", _("Family names")),
        Attribute("NomeCompleto", _("Full name")),
        Attribute("DataNascimento", _("Date of birth")),
        Attribute("NIF", _("Tax number (NIF)")),
        Attribute("NumeroTelemovel", _("Mobile number")),
        Attribute("CorreioElectronico", _("E-mail address")),
        Attribute("DocType", _("Type of foreign document")),
        Attribute("DocNationality", _("Country of the foreign document")),
        Attribute("DocNumber", _("Number of the foreign document")),
        Attribute("TemAssinaturaDigitalCMD", _("Digital signature active")),
        Attribute("DataValidade", _("Key valid until")),
    ]
}

# The minimum identity set: NIC for Portuguese citizens, the foreign document otherwise.
IDENTITY = ["NIC", "DocType", "DocNationality", "DocNumber"]
FOREIGN_DOCUMENT = ["DocType", "DocNationality", "DocNumber"]


def identity_set(citizen: Citizen | None) -> list[str]:
    """The minimum identity set of ``domain.md``: NIC for a Portuguese citizen, the foreign
    document (type, country, number) for a foreign resident; all four when the citizen is unknown."""
    if citizen is None:
        return list(IDENTITY)
    return ["NIC"] if citizen.doc_type == DocType.CITIZEN_CARD else list(FOREIGN_DOCUMENT)


def attribute_values(key: Key) -> dict[str, object]:
    """Every attribute the key can provide now (absent when the citizen has no such data)."""
    from chave.signing.services import active_credential

    citizen: Citizen = key.citizen
    values: dict[str, object] = {
        "NomeProprio": citizen.given_name,
        "NomeApelido": citizen.family_name,
        "NomeCompleto": citizen.full_name,
        "DataNascimento": citizen.birth_date.isoformat(),
        "DataValidade": key.valid_until.isoformat(),
        "TemAssinaturaDigitalCMD": active_credential(citizen) is not None,
    }
    if citizen.doc_type == DocType.CITIZEN_CARD:
        values["NIC"] = citizen.doc_number
    else:
        values.update(DocType=citizen.doc_type, DocNationality=citizen.doc_country, DocNumber=citizen.doc_number)
    if citizen.nif:
        values["NIF"] = citizen.nif
    for contact in key.verified_contacts():
        if contact.kind == ContactKind.MOBILE:
            values["NumeroTelemovel"] = contact.value
        elif contact.kind == ContactKind.EMAIL:
            values["CorreioElectronico"] = contact.value
    return values


def labels(names: list[str]) -> str:
    """Attribute names as people read them, in the active language: "Full name, Date of birth"."""
    return ", ".join(str(ATTRIBUTES[n].label) if n in ATTRIBUTES else n for n in names)


def shown(name: str, value: object) -> str:
    """An attribute's value as the citizen reads it on a consent page, in their language: dates
    in words, the mobile number grouped, the foreign document's type and country by name, yes or
    no. What a portal receives is :func:`attribute_values`' value, unchanged."""
    if value is None:
        return gettext("not available")
    if isinstance(value, bool):
        return gettext("yes") if value else gettext("no")
    if name in ("DataNascimento", "DataValidade"):
        return formats.day(dt.date.fromisoformat(str(value)))
    if name == "NumeroTelemovel":
        return formats.phone_number(str(value))
    if name == "DocType" and value in DocType.values:
        return str(DocType(value).label)
    if name == "DocNationality":
        return formats.country(str(value))
    return str(value)


def consent_rows(key: Key, names: list[str], mandatory: set[str]) -> list[dict]:
    """The rows of a consent page: each attribute asked for (``names``, in order) that Chave
    knows, with its label, its value as shown (:func:`shown`) and whether it is ``mandatory``."""
    values = attribute_values(key)
    return [{"name": name, "label": ATTRIBUTES[name].label, "shown": shown(name, values.get(name)),
             "mandatory": name in mandatory}
            for name in names if name in ATTRIBUTES]


def subject(relying_party, citizen: Citizen) -> str:
    """The citizen's identifier at this party: pairwise per sector by default (parties cannot
    correlate citizens, and it survives a new key); one public value when registered so."""
    sector = "public" if relying_party.subject_type == "public" else relying_party.sector
    digest = hmac.new(settings.CHAVE_PAIRWISE_SALT.encode(), f"{sector}\x00{citizen.pk}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).rstrip(b"=").decode()
