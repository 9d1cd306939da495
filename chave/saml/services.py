"""Operations of the SAML 2.0 door: registering service providers from their metadata, checking an
``AuthnRequest``, and answering it.

The decisions are the federation's (:mod:`chave.federation.services`): the registry and its
approval, the login decision (SSO, ``ForceAuthn``, the level), consent and the attributes. This
module only translates: ``fa:FAAALevel`` / STORK QAA / ``RequestedAuthnContext`` into the levels
the request names, ``fa:RequestedAttributes`` into the attributes asked for, and the answer into a
signed ``Response`` (:mod:`chave.saml.idp`).

Errors: :class:`Refusal` when the request cannot be tied to an approved SP and one of its
registered ACS URLs (answered with a page, nothing signed, no redirect); :class:`Answer` once they
are known (a signed SAML error status goes back to the ACS).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import secrets
import zlib
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils.translation import gettext_lazy as _
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, saml, samlp
from saml2.mdstore import MetadataStore
from saml2.time_util import str_to_time

from chave import clock, policy
from chave.audit import services as audit
from chave.compiled import Compiled, Inserter, first
from chave.federation import services as federation
from chave.federation.attributes import ATTRIBUTES, PREFIX
from chave.federation.levels import EIDAS_LEVEL_URIS, LEVEL_URIS, levels_named
from chave.federation.models import RelyingParty, RelyingPartyEvent

from . import idp
from .models import SeenRequest, ServiceProvider

SAMLP_NS = "urn:oasis:names:tc:SAML:2.0:protocol"
SAML_NS = "urn:oasis:names:tc:SAML:2.0:assertion"
METADATA_MAX_BYTES = 512 * 1024
# The sign-in methods a portal may hide or select first (AuthTabPresentationPolicies): CC the
# Citizen Card, CMD the key (PIN + code), QRCODE the app's QR sign-in. UPP and RSS are other
# services' methods: ignored.
PRESENTATION_TABS = ("CC", "CMD", "QRCODE")
# The logout bindings that go through the citizen's browser; an SP's SOAP logout service is called
# by Chave's worker instead (:func:`soap_logout`).
FRONT_CHANNEL = (BINDING_HTTP_REDIRECT, BINDING_HTTP_POST)

# --- Service providers in the registry ------------------------------------------------------


@dataclass(frozen=True)
class SpMetadata:
    entity_id: str
    acs: list[dict]
    slo: list[dict]
    certificates: list[str]
    xml: str


def _pem(b64: str) -> str:
    body = "".join(b64.split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


def read_metadata(xml: bytes | str) -> SpMetadata:
    """The SP in a metadata document (pysaml2 reads it; DTDs and entities are refused): its entity
    ID, ACS and SLO endpoints and signing certificates. Raises ``ValidationError`` (field
    ``saml_metadata``) when it is not SAML metadata of exactly one SP with an HTTP-POST ACS and a
    signing certificate."""
    def refuse(message, code):
        return ValidationError({"saml_metadata": [ValidationError(message, code=code)]})

    if isinstance(xml, bytes):
        if len(xml) > METADATA_MAX_BYTES:
            raise refuse(_("The metadata is too large."), "metadata_too_large")
        try:
            xml = xml.decode("utf-8")
        except UnicodeDecodeError:
            raise refuse(_("The metadata is not UTF-8 text."), "metadata_not_text")
    try:
        SafeET.fromstring(xml.encode(), forbid_dtd=True, forbid_entities=True, forbid_external=True)
        store = MetadataStore(None, None)
        store.load("inline", xml)
        entities = [eid for eid in store.keys() if "spsso_descriptor" in store[eid]]
    except Exception:  # any parse failure of untrusted input (defusedxml, pysaml2, xmlschema)
        raise refuse(_("This is not SAML 2.0 metadata."), "metadata_invalid")
    if len(entities) != 1:
        raise refuse(_("The metadata must describe exactly one service provider."), "metadata_not_one_sp")
    entity_id = entities[0]
    acs = [{"url": e["location"], "binding": e["binding"], "index": str(e.get("index") or ""),
            "default": str(e.get("is_default") or "").lower() == "true"}
           for e in _endpoints(store, entity_id, "assertion_consumer_service", (BINDING_HTTP_POST,))]
    slo = [{"url": e["location"], "binding": e["binding"]}
           for e in _endpoints(store, entity_id, "single_logout_service", (*FRONT_CHANNEL, BINDING_SOAP))]
    certificates = [_pem(cert) for _name, cert in store.certs(entity_id, "spsso", "signing")]
    if not acs:
        raise refuse(_("The service provider has no HTTP-POST assertion consumer service."), "metadata_no_acs")
    if not certificates:
        raise refuse(_("The service provider has no signing certificate: Chave accepts signed requests only."),
                     "metadata_no_certificate")
    bad = [e["url"] for e in acs + slo if not _url_ok(e["url"])]
    if bad:
        raise refuse(_("These addresses must be https:// (http:// only on this computer): %(urls)s.") % {
            "urls": ", ".join(bad)}, "metadata_bad_url")
    return SpMetadata(entity_id, acs, slo, certificates, xml)


def load_metadata(source: str) -> tuple[SpMetadata, str]:
    """An SP's metadata from a file path or an https:// address (read at most
    ``METADATA_MAX_BYTES``); returns it and the address (empty for a file). Raises
    ``ValidationError`` (field ``saml_metadata``) when it cannot be read or is not SP metadata."""
    import urllib.request
    from pathlib import Path

    def unreadable(error):
        return ValidationError({"saml_metadata": [ValidationError(
            _("The metadata %(source)s could not be read (%(error)s)."), code="metadata_unreadable",
            params={"source": source, "error": error})]})

    if source.startswith(("https://", "http://")):
        if not _url_ok(source):
            raise unreadable(_("only https:// addresses"))
        try:
            with urllib.request.urlopen(source, timeout=settings.CHAVE_HTTP_TIMEOUT) as response:  # noqa: S310
                data = response.read(METADATA_MAX_BYTES + 1)
        except (OSError, ValueError) as exc:
            raise unreadable(exc.__class__.__name__) from exc
        return read_metadata(data), source
    try:
        with Path(source).open("rb") as handle:
            data = handle.read(METADATA_MAX_BYTES + 1)
    except OSError as exc:
        raise unreadable(exc.strerror or exc.__class__.__name__) from exc
    return read_metadata(data), ""


def _endpoints(store, entity_id: str, service: str, bindings) -> list[dict]:
    """The SP's endpoints of one service for the given bindings, read from pysaml2's parsed
    metadata (its lookup logs an error for a binding the SP has none of)."""
    found = []
    for descriptor in store[entity_id].get("spsso_descriptor") or []:
        found += [e for e in descriptor.get(service) or [] if e.get("binding") in bindings]
    return found


def _url_ok(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1"))


def register_service_provider(*, metadata: SpMetadata, name: str, entity_nif: str, contact_email: str,
                              allowed_attributes=(), mandatory_attributes=(), min_level: int | None = None,
                              metadata_url: str = "", by: str = "operator") -> ServiceProvider:
    """Record a SAML service provider's request to integrate (state ``requested``; the federation's
    :func:`~chave.federation.services.decide` approves it). Raises one ``ValidationError`` listing
    every problem by field (the registry's fields, and ``saml_metadata`` for an entity ID already
    registered); nothing is written then."""
    errors: dict[str, list[ValidationError]] = {}
    name, entity_nif, contact_email, allowed, mandatory, level = federation.check_registration(
        errors, name=name, entity_nif=entity_nif, contact_email=contact_email, allowed_attributes=allowed_attributes,
        mandatory_attributes=mandatory_attributes, min_level=min_level)
    if ServiceProvider.objects.filter(entity_id=metadata.entity_id).exists():
        errors["saml_metadata"] = [ValidationError(_("The service provider %(entity_id)s is already registered."),
                                                   code="entity_id_taken", params={"entity_id": metadata.entity_id})]
    if errors:
        raise ValidationError(errors)
    from urllib.parse import urlsplit

    now = clock.now()
    with transaction.atomic():
        party = RelyingParty.objects.create(
            client_id="saml-" + secrets.token_hex(12), name=name, entity_nif=entity_nif,
            contact_email=contact_email, redirect_uris=[], allowed_attributes=allowed,
            mandatory_attributes=mandatory, min_level=level,
            # Pairwise NameIDs per sector: the host of the first ACS (as OIDC uses the redirect URIs' host).
            sector_identifier=urlsplit(metadata.acs[0]["url"]).hostname or "", created_at=now, state_changed_at=now)
        sp = ServiceProvider.objects.create(
            relying_party=party, entity_id=metadata.entity_id, acs=metadata.acs, slo=metadata.slo,
            certificates=metadata.certificates, metadata_xml=metadata.xml, metadata_url=metadata_url,
            updated_at=now)
        RelyingPartyEvent.objects.create(relying_party=party, at=now, action="requested", by=by)
        audit.record("rp.register", outcome="ok", client_id=party.client_id, by=by, protocol="saml",
                     entity_id=metadata.entity_id)
    return sp


def replace_metadata(sp: ServiceProvider, metadata: SpMetadata, *, by: str, reason: str = "") -> ServiceProvider:
    """New metadata for a registered SP (a new certificate, new ACS URLs): the entity ID must stay
    the same. Kept in the party's history as ``keys_changed``."""
    reason = federation.check_reason(reason)
    if metadata.entity_id != sp.entity_id:
        raise ValidationError({"saml_metadata": [ValidationError(
            _("The metadata is for %(other)s, not %(entity_id)s."), code="entity_id_changed",
            params={"other": metadata.entity_id, "entity_id": sp.entity_id})]})
    now = clock.now()
    with transaction.atomic():
        ServiceProvider.objects.filter(pk=sp.pk).update(acs=metadata.acs, slo=metadata.slo,
                                                        certificates=metadata.certificates,
                                                        metadata_xml=metadata.xml, updated_at=now)
        RelyingPartyEvent.objects.create(relying_party=sp.relying_party, at=now, action="keys_changed", by=by,
                                         reason=reason)
        audit.record("saml.metadata_replaced", outcome="ok", client_id=sp.relying_party.client_id, by=by)
    sp.refresh_from_db()
    return sp


# --- Requests ------------------------------------------------------------------------------


class Refusal(Exception):
    """The request cannot be answered to a known SP and ACS: a page, nothing signed."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


class Answer(Exception):
    """An error that goes back to the SP's ACS as a signed SAML status."""

    def __init__(self, top: str, sub: str | None, message: str):
        super().__init__(message)
        self.top, self.sub, self.message = top, sub, message


def _requester(message: str, sub: str | None = None) -> Answer:
    return Answer(samlp.STATUS_REQUESTER, sub, message)


@dataclass
class ParsedRequest:
    """What Chave keeps of a checked AuthnRequest while the citizen signs in and consents."""

    request_id: str
    acs: str
    relay_state: str | None
    levels: list[int]
    eidas: bool = False
    force: bool = False
    passive: bool = False
    name_id_format: str = saml.NAMEID_FORMAT_PERSISTENT
    requested: list[dict] = field(default_factory=list)  # [{"uri", "name" (or None), "required"}]
    hide: list[str] = field(default_factory=list)
    default_tab: str | None = None


def _inflate(data: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        xml = inflater.decompress(data, limit + 1)
    except zlib.error:
        raise Refusal(_("The SAML request is not a valid DEFLATE stream."))
    if len(xml) > limit or inflater.unconsumed_tail:
        raise Refusal(_("The SAML request is too large."))
    return xml


def decode(raw: str, binding: str) -> bytes:
    """The request's XML from its transport form (base64, DEFLATE-compressed for the Redirect
    binding), bounded by ``saml_request_max_bytes`` before and after inflating."""
    limit = policy.get("saml_request_max_bytes")
    if len(raw) > limit * 2:
        raise Refusal(_("The SAML request is too large."))
    try:
        data = base64.b64decode("".join(raw.split()), validate=True)
    except (binascii.Error, ValueError):
        raise Refusal(_("The SAML request is not valid base64."))
    if binding == BINDING_HTTP_REDIRECT:
        return _inflate(data, limit)
    if len(data) > limit:
        raise Refusal(_("The SAML request is too large."))
    return data


def _safe_root(xml: bytes):
    try:
        return SafeET.fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except Exception:  # DTDs, entities, malformed XML: defusedxml's and expat's errors alike
        raise Refusal(_("The SAML request is not well-formed XML, or holds a document type declaration."))


def _approved(queryset):
    return first(queryset.select_related("relying_party").filter(relying_party__state=RelyingParty.State.APPROVED))


_APPROVED_BY_ENTITY = Compiled(lambda entity_id: _approved(ServiceProvider.objects.filter(entity_id=entity_id)), str)
_APPROVED_BY_PK = Compiled(lambda pk: _approved(ServiceProvider.objects.filter(pk=pk)), int)


def approved_provider(pk: int) -> ServiceProvider | None:
    """The SP ``pk`` with its relying party, if approved."""
    return _APPROVED_BY_PK.first(pk)


def _service_provider(root, kind: str = "AuthnRequest") -> ServiceProvider:
    if root.tag != f"{{{SAMLP_NS}}}{kind}":
        raise Refusal(_("This is not a SAML 2.0 %(kind)s.") % {"kind": kind})
    issuer = root.find(f"{{{SAML_NS}}}Issuer")
    entity_id = (issuer.text or "").strip() if issuer is not None else ""
    sp = _APPROVED_BY_ENTITY.first(entity_id) if entity_id else None
    if sp is None:
        raise Refusal(_("This service provider is not registered with Chave, or not approved."))
    return sp


def _acs(sp: ServiceProvider, message) -> str:
    url = message.assertion_consumer_service_url
    index = message.assertion_consumer_service_index
    if url:
        if url not in sp.acs_urls:
            raise Refusal(_("The assertion consumer service address is not one the service provider registered."))
        return url
    if index is not None:
        for endpoint in sp.acs:
            if endpoint["index"] == str(index):
                return endpoint["url"]
        raise Refusal(_("The assertion consumer service index is not one the service provider registered."))
    defaults = [e["url"] for e in sp.acs if e.get("default")]
    return (defaults or sp.acs_urls)[0]


def _children(extensions):
    for element in (extensions.extension_elements if extensions is not None else []) or []:
        yield element


def _faaa_level(text: str) -> int:
    value = (text or "").strip()
    if value not in ("1", "2", "3", "4"):
        raise _requester("fa:FAAALevel must be 1, 2, 3 or 4.")
    return max(int(value), min(LEVEL_URIS))  # Chave offers no level 1: its lowest level meets it


def _extensions(message, parsed: ParsedRequest) -> None:
    faaa = stork = None
    for element in _children(message.extensions):
        if element.namespace == idp.FA_NS and element.tag == "FAAALevel":
            faaa = _faaa_level(element.text)
        elif element.namespace == idp.STORK_NS and element.tag == "QualityAuthenticationAssuranceLevel":
            stork = _faaa_level(element.text)
        elif element.namespace == idp.FA_NS and element.tag == "RequestedAttributes":
            for child in element.children:
                if child.namespace != idp.FA_NS or child.tag != "RequestedAttribute":
                    continue
                uri = (child.attributes.get("Name") or "").strip()
                required = (child.attributes.get("isRequired") or "").strip().lower()
                if required not in ("", "true", "false"):
                    raise _requester("isRequired must be True or False.")
                if not uri or len(uri) > 256:
                    raise _requester("Each fa:RequestedAttribute needs a Name.")
                name = uri.removeprefix(PREFIX) if uri.startswith(PREFIX) else None
                parsed.requested.append({"uri": uri, "name": name if name in ATTRIBUTES else None,
                                         "required": required == "true"})
        elif element.namespace == idp.PP_NS and element.tag == "AuthTabPresentationPolicies":
            for child in element.children:
                tab = (child.attributes.get("TabId") or "").strip().upper()
                if tab not in PRESENTATION_TABS:
                    continue  # UPP, RSS and unknown tabs: other services' methods
                if child.tag == "hideAuthTab" and tab not in parsed.hide:
                    parsed.hide.append(tab)
                elif child.tag == "defaultSelectedAuthTab":
                    parsed.default_tab = tab
    if len({r["uri"] for r in parsed.requested}) != len(parsed.requested):
        raise _requester("An attribute is requested twice.")
    named = [faaa] if faaa is not None else [stork] if stork is not None else []
    context = message.requested_authn_context
    if not named and context is not None:
        uris = [ref.text.strip() for ref in context.authn_context_class_ref or [] if ref.text]
        named = levels_named(uris)
        parsed.eidas = any(uri in EIDAS_LEVEL_URIS.values() for uri in uris)
        if uris and not named:
            raise Answer(samlp.STATUS_RESPONDER, samlp.STATUS_NO_AUTHN_CONTEXT,
                         "None of the requested authentication contexts is a level Chave provides.")
    # No level named: a portal built for autenticacao.gov expects the Citizen Card (FAAALevel absent = 4).
    parsed.levels = named or [max(LEVEL_URIS)]


def _check_time(message) -> None:
    window = dt.timedelta(seconds=policy.get("saml_request_max_age_seconds"))
    try:
        issued = dt.datetime(*str_to_time(message.issue_instant)[:6], tzinfo=dt.timezone.utc)
    except (TypeError, ValueError):
        raise _requester("IssueInstant is not a time.")
    if abs(clock.now() - issued) > window:
        raise _requester("The request is too old, or from the future (IssueInstant).")


def _signed_message(sp: ServiceProvider, parse: str, binding: str, raw: str, xml: bytes, relay_state, sig_alg,
                    signature):
    """The request as pysaml2's ``parse`` (``parse_authn_request``, ``parse_logout_request``) reads it
    once the SP's registered certificates verify its signature (enveloped for HTTP-POST, on the
    query string for HTTP-Redirect); None when they do not or the XML is not what it should be."""
    with idp.idp([sp.metadata_xml]) as server:
        try:
            if binding == BINDING_HTTP_POST:
                return getattr(server, parse)(base64.b64encode(xml).decode(), BINDING_HTTP_POST)
            return getattr(server, parse)(raw, BINDING_HTTP_REDIRECT, relay_state=relay_state, sigalg=sig_alg,
                                          signature=signature)
        except Exception:  # IncorrectlySigned, schema errors, xmlsec1 failures of untrusted input
            return None


def _verify(sp: ServiceProvider, binding: str, raw: str, xml: bytes, relay_state, sig_alg, signature):
    """pysaml2 verifies the signature with the SP's registered certificates: the enveloped XML
    signature (HTTP-POST) or the query-string signature (HTTP-Redirect)."""
    request = _signed_message(sp, "parse_authn_request", binding, raw, xml, relay_state, sig_alg, signature)
    if request is None or request.message is None:
        raise Refusal(_("The SAML request is not signed with the service provider's registered certificate."))
    message = request.message
    if message.issuer is None or (message.issuer.text or "").strip() != sp.entity_id:
        raise Refusal(_("The SAML request is not signed with the service provider's registered certificate."))
    return message


def receive(*, binding: str, raw: str | None, relay_state: str | None, sig_alg: str | None = None,
            signature: str | None = None) -> tuple[ServiceProvider, ParsedRequest]:
    """Check an AuthnRequest: decoded within bounds, no DTD, from an approved SP, signed by its
    registered certificate, for one of its ACS URLs. Then (errors now go back to that ACS,
    :class:`Answer`): Destination is Chave's SSO address, IssueInstant within
    ``saml_request_max_age_seconds``, the ID never answered before, the NameID format one Chave
    issues, the ``fa:`` extensions well formed. Raises :class:`Refusal` before the ACS is known.
    On :class:`Answer` the exception carries ``sp`` and ``parsed`` (for the error response)."""
    if not raw:
        raise Refusal(_("There is no SAML request."))
    if relay_state is not None and len(relay_state.encode()) > policy.get("saml_relay_state_max_bytes"):
        raise Refusal(_("The RelayState is longer than %(max)d bytes.") % {
            "max": policy.get("saml_relay_state_max_bytes")})
    xml = decode(raw, binding)
    root = _safe_root(xml)
    sp = _service_provider(root)
    message = _verify(sp, binding, raw, xml, relay_state, sig_alg, signature)
    parsed = ParsedRequest(request_id=str(message.id or ""), acs=_acs(sp, message), relay_state=relay_state,
                           levels=[])
    try:
        if message.protocol_binding not in (None, BINDING_HTTP_POST):
            raise _requester("Chave answers by HTTP-POST only (ProtocolBinding).",
                             samlp.STATUS_UNSUPPORTED_BINDING)
        if (message.destination or "") != idp.sso_url():
            raise _requester("The request's Destination is not Chave's single sign-on service.")
        _check_time(message)
        if not parsed.request_id or len(parsed.request_id) > 256:
            raise _requester("The request has no usable ID.")
        policy_ = message.name_id_policy
        wanted = policy_.format if policy_ is not None else None
        if wanted in (None, saml.NAMEID_FORMAT_UNSPECIFIED, saml.NAMEID_FORMAT_PERSISTENT):
            parsed.name_id_format = saml.NAMEID_FORMAT_PERSISTENT
        elif wanted == saml.NAMEID_FORMAT_TRANSIENT:
            parsed.name_id_format = saml.NAMEID_FORMAT_TRANSIENT
        else:
            raise _requester("Chave issues persistent and transient NameIDs only.",
                             samlp.STATUS_INVALID_NAMEID_POLICY)
        parsed.force = str(message.force_authn).lower() in ("true", "1")
        parsed.passive = str(message.is_passive).lower() in ("true", "1")
        _extensions(message, parsed)
    except Answer as answer:
        answer.sp, answer.parsed = sp, parsed
        raise
    return sp, parsed


_NEW_SEEN = Inserter(SeenRequest)
_FORGET_SEEN = Compiled(lambda now: SeenRequest.objects.filter(expires_at__lt=now), dt.datetime, delete=True)
_SEEN = Compiled(lambda reference, now: first(SeenRequest.objects.select_related("service_provider__relying_party")
                                              .filter(reference=reference, taken_at__isnull=True, expires_at__gt=now)),
                 str, dt.datetime)
# A kept request is taken once: the one request that marks it taken carries it on.
_TAKE_SEEN = Compiled(lambda pk, now: SeenRequest.objects.filter(pk=pk, taken_at__isnull=True), int, dt.datetime,
                      update=lambda pk, now: {"taken_at": now})


def _keep(sp: ServiceProvider, request_id: str, parsed: dict) -> str | None:
    """Keep a checked request under a new one-use reference (returned), for the browser to carry
    to a top-level GET; None when the SP's request ID was received before (a replay)."""
    now = clock.now()
    window = dt.timedelta(seconds=policy.get("saml_request_max_age_seconds"))
    _FORGET_SEEN.delete(now)
    reference = secrets.token_urlsafe(32)
    try:
        with transaction.atomic():
            _NEW_SEEN.create(service_provider=sp, request_id=request_id, reference=reference,
                                       parsed=parsed, received_at=now, expires_at=now + 2 * window)
    except IntegrityError:
        audit.record("saml.replay", outcome="refused", client_id=sp.relying_party.client_id)
        return None
    return reference


def _take(reference: str, *, logout: bool) -> SeenRequest | None:
    """The row kept under ``reference``, once (None when unknown, taken, expired, or of the other
    kind: an AuthnRequest, or a LogoutRequest when ``logout``)."""
    if not reference or len(reference) > 64 or "\x00" in reference:  # not a reference we made (NUL: not in SQL)
        return None
    now = clock.now()
    row = _SEEN.first(reference, now)
    if row is None or (LOGOUT_REQUEST in row.parsed) != logout:
        return None
    if not _TAKE_SEEN.update(row.pk, now):
        return None
    return row


def remember(sp: ServiceProvider, parsed: ParsedRequest) -> str:
    """Keep a checked request for the browser to carry to the login; returns its one-use reference.
    Raises :class:`Answer` (``Requester``) when its ID was answered before (a replay)."""
    reference = _keep(sp, parsed.request_id, parsed.__dict__)
    if reference is None:
        answer = _requester("This request was already received (its ID is answered once).",
                            samlp.STATUS_REQUEST_DENIED)
        answer.sp, answer.parsed = sp, parsed
        raise answer
    return reference


def take(reference: str) -> tuple[ServiceProvider, ParsedRequest] | None:
    """The request kept under ``reference``, once (None when unknown, taken or expired)."""
    row = _take(reference, logout=False)
    return None if row is None else (row.service_provider, ParsedRequest(**row.parsed))


# --- Answers --------------------------------------------------------------------------------


def requested_attributes(sp: ServiceProvider, parsed: ParsedRequest, citizen) -> tuple[list[str], list[str]]:
    """(asked, required): the attributes the request asks for that the SP is allowed, and those of
    them it says it needs (``isRequired``) or registered as mandatory. Without
    ``fa:RequestedAttributes``, the citizen's identity set (within what the SP is allowed)."""
    from chave.federation.attributes import identity_set

    party = sp.relying_party
    allowed = set(party.allowed_attributes)
    if parsed.requested:
        asked = [r["name"] for r in parsed.requested if r["name"] in allowed]
        required = [r["name"] for r in parsed.requested if r["name"] in allowed and r["required"]]
    else:
        asked = [a for a in identity_set(citizen) if a in allowed]
        required = []
    required = list(dict.fromkeys([*required, *(a for a in asked if a in party.mandatory_attributes)]))
    return list(dict.fromkeys(asked)), required


def released(sp: ServiceProvider, parsed: ParsedRequest, key, granted: list[str]) -> list[idp.Released]:
    """Each requested attribute with its ``fa:AttributeStatus``: ``Available`` with its value when the
    citizen shared it and has it, ``NotAvailable`` when they have no such data (or the SP may not
    have it), ``Withheld`` when they refused to share it."""
    from chave.federation.attributes import attribute_values

    values = attribute_values(key)
    if parsed.requested:
        wanted = [(r["uri"], r["name"]) for r in parsed.requested]
    else:
        asked, _required = requested_attributes(sp, parsed, key.citizen)
        wanted = [(ATTRIBUTES[name].uri, name) for name in asked]
    allowed = set(sp.relying_party.allowed_attributes)
    result = []
    for uri, name in wanted:
        if name is None or name not in allowed:
            result.append(idp.Released(uri, "NotAvailable"))
        elif name not in granted:
            result.append(idp.Released(uri, "Withheld"))
        elif values.get(name) is None:
            result.append(idp.Released(uri, "NotAvailable"))
        else:
            value = values[name]
            text = ("true" if value else "false") if isinstance(value, bool) else str(value)
            result.append(idp.Released(uri, "Available", text))
    return result


def name_id(sp: ServiceProvider, parsed: ParsedRequest, citizen) -> saml.NameID:
    """Persistent and pairwise per sector (the federation's subject), or transient (random, once)."""
    from chave.federation.attributes import subject

    if parsed.name_id_format == saml.NAMEID_FORMAT_TRANSIENT:
        return saml.NameID(format=saml.NAMEID_FORMAT_TRANSIENT, text="_" + secrets.token_hex(20))
    return saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, name_qualifier=idp.entity_id(),
                       sp_name_qualifier=sp.entity_id, text=subject(sp.relying_party, citizen))


def level_uri(parsed: ParsedRequest, level: int) -> str:
    return EIDAS_LEVEL_URIS[level] if parsed.eidas else LEVEL_URIS[level]


def success_response(sp: ServiceProvider, parsed: ParsedRequest, *, key, level: int, auth_time: dt.datetime,
                     granted: list[str], address: str | None, session_index: str | None = None) -> str:
    """The signed Response (with a signed Assertion) for a completed sign-in, base64-encoded;
    ``session_index`` (:func:`session_index`) names the SSO session in the AuthnStatement."""
    with idp.idp([sp.metadata_xml], signing=True) as server:
        server.released = released(sp, parsed, key, granted)
        server.address, server.session_index = address, session_index
        response = server.create_authn_response(
            {}, parsed.request_id, parsed.acs, sp.entity_id, name_id=name_id(sp, parsed, key.citizen),
            authn={"class_ref": level_uri(parsed, level),
                   "authn_instant": int(auth_time.timestamp())},
            sign_response=True, sign_assertion=True,
            sign_alg=idp.SIG_RSA_SHA256, digest_alg=idp.DIGEST_SHA256,
        )
    return idp.encoded(str(response))


def error_response(sp: ServiceProvider, parsed: ParsedRequest, top: str, sub: str | None, message: str) -> str:
    """A signed Response carrying a SAML error status (no assertion), base64-encoded."""
    with idp.idp([sp.metadata_xml], signing=True) as server:
        response = server._response(parsed.request_id, parsed.acs, idp.status(top, sub, message), None, True,
                                    sign_alg=idp.SIG_RSA_SHA256, digest_alg=idp.DIGEST_SHA256)
    return idp.encoded(str(response))


# --- Single logout ------------------------------------------------------------------------


def receive_logout(*, binding: str, raw: str | None, relay_state: str | None, sig_alg: str | None = None,
                   signature: str | None = None):
    """Check a LogoutRequest as an AuthnRequest is checked (bounded, no DTD, from an approved SP,
    signed with its registered certificate, Destination Chave's logout service); returns (SP,
    pysaml2's request). Raises :class:`Refusal`."""
    if not raw:
        raise Refusal(_("There is no SAML request."))
    if relay_state is not None and len(relay_state.encode()) > policy.get("saml_relay_state_max_bytes"):
        raise Refusal(_("The RelayState is longer than %(max)d bytes.") % {
            "max": policy.get("saml_relay_state_max_bytes")})
    xml = decode(raw, binding)
    sp = _service_provider(_safe_root(xml), "LogoutRequest")
    request = _signed_message(sp, "parse_logout_request", binding, raw, xml, relay_state, sig_alg, signature)
    message = request.message if request is not None else None
    if message is None or message.issuer is None or (message.issuer.text or "").strip() != sp.entity_id:
        raise Refusal(_("The SAML request is not signed with the service provider's registered certificate."))
    if (message.destination or "") != idp.slo_url():
        raise Refusal(_("The request's Destination is not Chave's logout service."))
    if not message.id or len(str(message.id)) > 256:
        raise Refusal(_("The logout request has no usable ID."))
    return sp, message


LOGOUT_REQUEST = "logout_request"  # what marks a kept LogoutRequest among the kept requests


def remember_logout(sp: ServiceProvider, message, relay_state: str | None) -> str:
    """Keep a checked LogoutRequest (:func:`receive_logout`) that came by HTTP-POST: a cross-site
    POST carries no ``SameSite=Lax`` session cookie, so the browser is sent on to a top-level GET
    with the returned one-use reference (:func:`take_logout`). Raises :class:`Refusal` when the
    SP's request ID was received before (a replay)."""
    reference = _keep(sp, str(message.id or ""), {LOGOUT_REQUEST: str(message), "relay_state": relay_state})
    if reference is None:
        raise Refusal(_("This logout request was already received."))
    return reference


def take_logout(reference: str):
    """The LogoutRequest kept under ``reference``, once: (SP, pysaml2's request, RelayState), or
    None when unknown, taken or expired."""
    row = _take(reference, logout=True)
    if row is None:
        return None
    return row.service_provider, samlp.logout_request_from_string(row.parsed[LOGOUT_REQUEST]), row.parsed["relay_state"]


def logout_response(sp: ServiceProvider, message, relay_state: str | None) -> tuple[str, str, list]:
    """Chave's signed LogoutResponse for the SP's front-channel logout service (Redirect preferred):
    (binding, address, and for the Redirect binding the signed query's Location, for HTTP-POST the
    form's fields, the response carrying its enveloped signature). Raises :class:`Refusal` when
    the SP registered no logout service the browser can be sent to."""
    endpoints = [e for e in sp.slo if e["binding"] in FRONT_CHANNEL]
    if not endpoints:
        raise Refusal(_("This service provider has no logout service: you are signed out of Chave."))
    endpoint = next((e for e in endpoints if e["binding"] == BINDING_HTTP_REDIRECT), endpoints[0])
    with idp.idp([sp.metadata_xml], signing=True) as server:
        response = server.create_logout_response(message, [endpoint["binding"]], sign=endpoint["binding"] != BINDING_HTTP_REDIRECT,
                                                 sign_alg=idp.SIG_RSA_SHA256, digest_alg=idp.DIGEST_SHA256)
        if endpoint["binding"] == BINDING_HTTP_REDIRECT:
            info = server.apply_binding(BINDING_HTTP_REDIRECT, str(response), endpoint["url"],
                                        relay_state=relay_state or "", response=True, sign=True,
                                        sigalg=idp.SIG_RSA_SHA256)
            return BINDING_HTTP_REDIRECT, endpoint["url"], [dict(info["headers"])["Location"]]
    fields = [("SAMLResponse", idp.encoded(str(response)))]
    if relay_state is not None:
        fields.append(("RelayState", relay_state))
    return BINDING_HTTP_POST, endpoint["url"], fields


def session_index(sso_session, sp: ServiceProvider) -> str:
    """The SessionIndex of the SSO session at this SP: stable (the logout names it again, with
    nothing stored) and different at each SP (SPs cannot link their citizens by it)."""
    message = f"saml-session\x00{sso_session.sid}\x00{sp.entity_id}".encode()
    digest = hmac.new(settings.CHAVE_PAIRWISE_SALT.encode(), message, hashlib.sha256)
    return "_" + digest.hexdigest()


def _persistent_name_id(sso_session, sp: ServiceProvider) -> saml.NameID:
    from chave.federation.attributes import subject

    return saml.NameID(format=saml.NAMEID_FORMAT_PERSISTENT, name_qualifier=idp.entity_id(),
                       sp_name_qualifier=sp.entity_id, text=subject(sp.relying_party, sso_session.key.citizen))


def soap_logout_url(sp: ServiceProvider) -> str | None:
    """The SP's logout service with the SOAP binding (Chave's worker calls it), or None."""
    return next((e["url"] for e in sp.slo if e["binding"] == BINDING_SOAP), None)


def _session_service_providers(sso_session):
    return (ServiceProvider.objects.select_related("relying_party")
            .filter(relying_party__in=sso_session.relying_parties.all(),
                    relying_party__state=RelyingParty.State.APPROVED)
            .order_by("relying_party__name"))


def soap_logout_parties(sso_session) -> list[RelyingParty]:
    """The session's SAML SPs that are told by SOAP back-channel (they registered a SOAP logout
    service); the others get a front-channel LogoutRequest (:func:`logout_request_urls`)."""
    return [sp.relying_party for sp in _session_service_providers(sso_session) if soap_logout_url(sp)]


def logout_request_urls(sso_session, *, exclude=None) -> list[str]:
    """Signed LogoutRequests (HTTP-Redirect) to the SAML SPs an SSO session served (but
    ``exclude``, the party that asked for the logout, and those told by SOAP back-channel), for the
    signed-out page to load in frames (as OpenID Connect's front-channel logout): the citizen's
    persistent NameID at each SP and the session's SessionIndex there."""
    urls = []
    for sp in _session_service_providers(sso_session):
        if (exclude is not None and sp.relying_party_id == exclude.pk) or soap_logout_url(sp):
            continue
        endpoint = next((e for e in sp.slo if e["binding"] == BINDING_HTTP_REDIRECT), None)
        if endpoint is None:
            continue
        with idp.idp([sp.metadata_xml], signing=True) as server:
            _id, request = server.create_logout_request(endpoint["url"], sp.entity_id,
                                                        name_id=_persistent_name_id(sso_session, sp),
                                                        session_indexes=[session_index(sso_session, sp)], sign=False)
            info = server.apply_binding(BINDING_HTTP_REDIRECT, str(request), endpoint["url"], sign=True,
                                        sigalg=idp.SIG_RSA_SHA256)
        urls.append(dict(info["headers"])["Location"])
    return urls


SOAP_ENV_NS = "http://schemas.xmlsoap.org/soap/envelope/"
# The SAML SOAP binding (saml-bindings-2.0 §3.2.2): SOAP 1.1, and this SOAPAction.
SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8",
                "SOAPAction": "http://www.oasis-open.org/committees/security"}


@dataclass(frozen=True)
class SoapLogout:
    """A LogoutRequest ready for the SP's SOAP logout service (made anew at each attempt)."""

    url: str
    request_id: str
    envelope: bytes


def soap_logout(sso_session, sp: ServiceProvider) -> SoapLogout:
    """A LogoutRequest for the SP's SOAP logout service, in a SOAP 1.1 envelope: Chave's
    enveloped XML signature (RSA-SHA256), the citizen's persistent NameID at the SP and the
    session's SessionIndex there. Raises ``ValueError`` when the SP has no SOAP logout service."""
    from lxml import etree

    url = soap_logout_url(sp)
    if url is None:
        raise ValueError("the service provider has no SOAP logout service")
    with idp.idp([sp.metadata_xml], signing=True) as server:
        request_id, signed = server.create_logout_request(
            url, sp.entity_id, name_id=_persistent_name_id(sso_session, sp),
            session_indexes=[session_index(sso_session, sp)], sign=True, sign_alg=idp.SIG_RSA_SHA256,
            digest_alg=idp.DIGEST_SHA256)
    # The signed message goes into the envelope as it is (an exclusive-c14n signature stays valid).
    message = etree.fromstring(str(signed).encode(), etree.XMLParser(resolve_entities=False, no_network=True))
    envelope = etree.Element(f"{{{SOAP_ENV_NS}}}Envelope", nsmap={"SOAP-ENV": SOAP_ENV_NS})
    etree.SubElement(envelope, f"{{{SOAP_ENV_NS}}}Body").append(message)
    return SoapLogout(url, str(request_id), etree.tostring(envelope, xml_declaration=True, encoding="UTF-8"))


def read_soap_logout_answer(sp: ServiceProvider, sent: SoapLogout, body: bytes) -> str:
    """What the SP's SOAP logout service answered: "" when it is a LogoutResponse to ``sent``
    with status ``Success`` (a signature on it, if any, must be the SP's), else why not (for the
    audit: the SAML status, never the message)."""
    from saml2.response import LogoutResponse

    with idp.idp([sp.metadata_xml]) as server:
        try:
            _safe_root(body)
            xml = server.unravel(body.decode(), BINDING_SOAP, LogoutResponse.msgtype)
            # pysaml2 reads it and checks a signature when there is one; the status is read below
            # (its own check raises on any status but Success).
            response = LogoutResponse(server.sec, asynchop=False).loads(xml, False).response
        except Exception:  # a SOAP fault, not XML, a DTD, a signature that does not verify: untrusted input
            response = None
    if response is None or not isinstance(response, samlp.LogoutResponse):
        return "the service provider did not answer with a LogoutResponse"
    issuer = (response.issuer.text or "").strip() if response.issuer is not None else ""
    if response.in_response_to != sent.request_id or issuer not in ("", sp.entity_id):
        return "the service provider answered another request"
    code = response.status.status_code if response.status is not None else None
    if code is None or code.value != samlp.STATUS_SUCCESS:
        values = []
        while code is not None:
            values.append(str(code.value).rsplit(":", 1)[-1])
            code = code.status_code
        return "the service provider answered " + ("/".join(values) or "without a status")
    return ""
