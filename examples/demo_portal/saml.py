"""The service provider's side of SAML 2.0, as a portal built for autenticacao.gov writes it, on
pysaml2 (its XML signatures: Debian's ``xmlsec1``).

- The IdP is known by its metadata (``ISSUER/saml/metadata``): its SSO and SLO addresses and its
  signing certificates, fetched again after five minutes (a key rotation shows up there).
- The portal's own key and self-signed certificate are made the first time and kept in
  ``data_dir`` (the key mode 0600); its metadata (``/saml/metadata``) carries the certificate,
  the ACS (HTTP-POST) and the logout service (HTTP-Redirect), and is what Chave registers.
- ``AuthnRequest``: signed (RSA-SHA256, HTTP-Redirect binding), with the autenticacao.gov
  extensions as the integration manual writes them: ``fa:RequestedAttributes`` (each
  ``isRequired="True"`` or ``"False"``) and ``fa:FAAALevel``.
- The ``Response`` at the ACS: pysaml2 checks the signatures against the IdP's metadata, the
  audience, recipient, ``InResponseTo`` (an outstanding request of this portal) and the times;
  each attribute's ``fa:AttributeStatus`` is read beside its value.
- Logout: a signed ``LogoutRequest`` to the IdP (SP-initiated), its ``LogoutResponse`` checked;
  and the IdP's own ``LogoutRequest`` (the citizen signed out elsewhere) checked and answered.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, ExtensionElement, samlp
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from .oidc import ProviderUnreachable, http_bytes

FA_NS = "http://autenticacao.cartaodecidadao.pt/atributos"
PP_NS = "http://autenticacao.cartaodecidadao.pt/presentationpolicy"
ATTRIBUTE_PREFIX = "http://interop.gov.pt/MDC/Cidadao/"
XMLSEC1 = "/usr/bin/xmlsec1"
METADATA_CACHE_SECONDS = 300
# Clock skew tolerated between the portal and the IdP.
LEEWAY_SECONDS = 60
MAX_METADATA_BYTES = 512 * 1024


class InvalidMessage(Exception):
    """A SAML message from the IdP failed a check; ``reason`` says which (safe to show)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def endpoints(base_url: str) -> dict[str, str]:
    """The portal's SAML addresses (its entity ID is its metadata's address)."""
    base = base_url.rstrip("/")
    return {"entity_id": base + "/saml/metadata", "acs": base + "/saml/acs", "slo": base + "/saml/slo"}


def fa_extensions(attributes: dict[str, bool] | None = None, level: int | None = None,
                  hide: list[str] = (), default_tab: str | None = None) -> samlp.Extensions:
    """The autenticacao.gov extensions as the manual writes them: ``fa:RequestedAttributes``
    (short names, each ``isRequired="True"`` or ``"False"``), ``fa:FAAALevel``, and the
    presentation policies (tabs to hide, the tab selected first)."""
    elements = []
    if attributes:
        children = [ExtensionElement("RequestedAttribute", namespace=FA_NS, attributes={
            "Name": ATTRIBUTE_PREFIX + name, "NameFormat": NAME_FORMAT_URI,
            "isRequired": "True" if required else "False"}) for name, required in attributes.items()]
        elements.append(ExtensionElement("RequestedAttributes", namespace=FA_NS, children=children))
    if level is not None:
        elements.append(ExtensionElement("FAAALevel", namespace=FA_NS, text=str(level)))
    if hide or default_tab:
        children = [ExtensionElement("hideAuthTab", namespace=PP_NS, attributes={"TabId": tab}) for tab in hide]
        if default_tab:
            children.append(ExtensionElement("defaultSelectedAuthTab", namespace=PP_NS,
                                             attributes={"TabId": default_tab}))
        elements.append(ExtensionElement("AuthTabPresentationPolicies", namespace=PP_NS, children=children))
    return samlp.Extensions(extension_elements=elements)


# --- the portal's own key ---------------------------------------------------------------------


@dataclass(frozen=True)
class SpKey:
    """The portal's signing key and self-signed certificate, files in ``data_dir``."""

    key_file: str
    cert_file: str

    KEY_NAME = "saml-sp-key.pem"
    CERT_NAME = "saml-sp-cert.pem"

    @classmethod
    def load_or_create(cls, data_dir: Path, common_name: str = "Demo SAML portal") -> SpKey:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        key_path, cert_path = data_dir / cls.KEY_NAME, data_dir / cls.CERT_NAME
        if not (key_path.exists() and cert_path.exists()):
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
            now = dt.datetime.now(dt.timezone.utc)
            cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                    .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
                    .not_valid_after(now + dt.timedelta(days=3650)).sign(key, hashes.SHA256()))
            tag = f"{os.getpid()}.{secrets.token_hex(4)}"
            fresh_key, fresh_cert = data_dir / f".{cls.KEY_NAME}.{tag}", data_dir / f".{cls.CERT_NAME}.{tag}"
            fd = os.open(fresh_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
            fresh_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            try:
                os.link(fresh_key, key_path)  # atomic: the first of two racing processes wins
                os.replace(fresh_cert, cert_path)
            except FileExistsError:
                pass
            finally:
                for leftover in (fresh_key, fresh_cert):
                    leftover.unlink(missing_ok=True)
        return cls(str(key_path), str(cert_path))


def _sp_config(base_url: str, key: SpKey, idp_metadata: str | None) -> SPConfig:
    urls = endpoints(base_url)
    config = SPConfig()
    config.load({
        "entityid": urls["entity_id"],
        "name": "Demo SAML portal",
        "xmlsec_binary": XMLSEC1,
        "key_file": key.key_file,
        "cert_file": key.cert_file,
        "metadata": {"inline": [idp_metadata]} if idp_metadata else {},
        "allow_unknown_attributes": True,
        "accepted_time_diff": LEEWAY_SECONDS,
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "service": {"sp": {
            "endpoints": {
                "assertion_consumer_service": [(urls["acs"], BINDING_HTTP_POST)],
                "single_logout_service": [(urls["slo"], BINDING_HTTP_REDIRECT)],
            },
            "name_id_format": [NAMEID_FORMAT_PERSISTENT],
            "authn_requests_signed": True,
            "logout_requests_signed": True,
            "want_response_signed": True,
            "want_assertions_signed": True,
            "allow_unsolicited": False,
        }},
    })
    return config


def sp_metadata(base_url: str, key: SpKey) -> str:
    """The portal's metadata: entity ID, signing certificate, ACS and logout service."""
    return str(entity_descriptor(_sp_config(base_url, key, None)))


# --- the identity provider ------------------------------------------------------------------------


@dataclass(frozen=True)
class Login:
    """What the ACS read from a valid Response."""

    name_id: str
    session_index: str | None
    level_uri: str
    auth_instant: str
    attributes: list[tuple[str, str, str | None]]  # (URI, fa:AttributeStatus, value)


class ServiceProvider:
    """The portal's pysaml2 client for the IdP at ``issuer`` (its metadata fetched and cached)."""

    def __init__(self, issuer: str, base_url: str, key: SpKey, *, timeout: float = 10):
        self.issuer = issuer.rstrip("/")
        self.base_url = base_url.rstrip("/")
        self.key = key
        self.timeout = timeout
        self.urls = endpoints(base_url)
        self._lock = threading.Lock()
        self._client: Saml2Client | None = None
        self._client_at = 0.0
        self._idp_entity: str | None = None

    def metadata(self) -> str:
        return sp_metadata(self.base_url, self.key)

    def client(self) -> tuple[Saml2Client, str]:
        """(pysaml2's client loaded with the IdP's current metadata, the IdP's entity ID)."""
        with self._lock:
            if self._client is None or time.monotonic() - self._client_at > METADATA_CACHE_SECONDS:
                status, body = http_bytes(self.issuer + "/saml/metadata", timeout=self.timeout,
                                          limit=MAX_METADATA_BYTES)
                if status != 200:
                    raise ProviderUnreachable(f"HTTP {status} for the IdP's metadata")
                try:
                    client = Saml2Client(_sp_config(self.base_url, self.key, body.decode()))
                    entities = [e for e in client.metadata.keys() if "idpsso_descriptor" in client.metadata[e]]
                except Exception as exc:  # noqa: BLE001 - any unreadable metadata is the same failure
                    raise ProviderUnreachable("the IdP's metadata cannot be read") from exc
                if len(entities) != 1:
                    raise ProviderUnreachable("the IdP's metadata does not describe one IdP")
                self._client, self._client_at, self._idp_entity = client, time.monotonic(), entities[0]
            return self._client, self._idp_entity

    def _service(self, client: Saml2Client, idp: str, service: str) -> str:
        locations = client.metadata.service(idp, "idpsso_descriptor", service, BINDING_HTTP_REDIRECT)
        if not locations:
            raise ProviderUnreachable(f"the IdP has no HTTP-Redirect {service}")
        return locations[0]["location"]

    def login_url(self, *, attributes: dict[str, bool], level: int, relay_state: str) -> tuple[str, str]:
        """(request ID, the address of Chave's SSO service with the signed AuthnRequest): the
        HTTP-Redirect binding, the answer asked for by HTTP-POST at the ACS."""
        client, idp = self.client()
        destination = self._service(client, idp, "single_sign_on_service")
        request_id, request = client.create_authn_request(
            destination, binding=BINDING_HTTP_POST, sign=False, nameid_format=NAMEID_FORMAT_PERSISTENT,
            extensions=fa_extensions(attributes, level), assertion_consumer_service_url=self.urls["acs"])
        info = client.apply_binding(BINDING_HTTP_REDIRECT, str(request), destination, relay_state=relay_state,
                                    sign=True, sigalg=SIG_RSA_SHA256)
        return request_id, dict(info["headers"])["Location"]

    def read_response(self, saml_response: str, outstanding: list[str]) -> tuple[str, Login]:
        """(the request ID it answers, what it says), once pysaml2 accepted it: signatures, audience,
        recipient, InResponseTo (one of ``outstanding``), times, and a Success status. Raises
        :class:`InvalidMessage`."""
        client, _idp = self.client()
        try:
            result = client.parse_authn_request_response(saml_response, BINDING_HTTP_POST,
                                                         outstanding={rid: "/" for rid in outstanding})
        except Exception as exc:  # noqa: BLE001 - pysaml2 raises many kinds for a refused response
            status = _status_of(exc)
            raise InvalidMessage(status or type(exc).__name__) from exc
        if result is None or result.assertion is None:
            raise InvalidMessage("no assertion")
        assertion = result.assertion
        statement = assertion.authn_statement[0]
        attributes = []
        for block in assertion.attribute_statement or []:
            for attribute in block.attribute:
                status = (attribute.extension_attributes or {}).get(f"{{{FA_NS}}}AttributeStatus", "")
                value = attribute.attribute_value[0].text if attribute.attribute_value else None
                attributes.append((attribute.name, status, value))
        return result.in_response_to, Login(
            name_id=result.name_id.text, session_index=statement.session_index,
            level_uri=statement.authn_context.authn_context_class_ref.text, auth_instant=statement.authn_instant,
            attributes=attributes)

    def logout_url(self, *, name_id: str, session_index: str | None, relay_state: str) -> tuple[str, str]:
        """(request ID, the address of Chave's logout service with the signed LogoutRequest)."""
        from saml2.saml import NameID

        client, idp = self.client()
        destination = self._service(client, idp, "single_logout_service")
        request_id, request = client.create_logout_request(
            destination, idp, name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=name_id),
            session_indexes=[session_index] if session_index else None, sign=False)
        info = client.apply_binding(BINDING_HTTP_REDIRECT, str(request), destination, relay_state=relay_state,
                                    sign=True, sigalg=SIG_RSA_SHA256)
        return request_id, dict(info["headers"])["Location"]

    def read_logout_response(self, query: dict[str, str]) -> str:
        """The request ID a signed LogoutResponse (HTTP-Redirect) answers, when it says Success.
        Raises :class:`InvalidMessage`."""
        client, idp = self.client()
        try:
            verdict = client.parse_logout_request_response(query["SAMLResponse"], BINDING_HTTP_REDIRECT)
        except Exception as exc:  # noqa: BLE001
            raise InvalidMessage(type(exc).__name__) from exc
        if verdict is None or verdict.response is None:
            raise InvalidMessage("unreadable logout response")
        if verdict.response.status.status_code.value != samlp.STATUS_SUCCESS:
            raise InvalidMessage(verdict.response.status.status_code.value)
        if not _redirect_signature_ok(client, idp, query, "SAMLResponse"):
            raise InvalidMessage("signature")
        return verdict.response.in_response_to

    def read_logout_request(self, query: dict[str, str]) -> tuple[str, str]:
        """The IdP's own LogoutRequest (HTTP-Redirect, its query signature checked): (the NameID
        to sign out, the address of Chave's logout service with the signed LogoutResponse).
        Raises :class:`InvalidMessage`."""
        client, idp = self.client()
        if not _redirect_signature_ok(client, idp, query, "SAMLRequest"):
            raise InvalidMessage("signature")
        try:
            request = client.parse_logout_request(query["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                                  relay_state=query.get("RelayState"))
        except Exception as exc:  # noqa: BLE001
            raise InvalidMessage(type(exc).__name__) from exc
        message = request.message if request is not None else None
        if message is None or message.issuer is None or message.issuer.text != idp or message.name_id is None:
            raise InvalidMessage("not the IdP's logout request")
        response = client.create_logout_response(message, [BINDING_HTTP_REDIRECT], sign=False)
        destination = self._service(client, idp, "single_logout_service")
        info = client.apply_binding(BINDING_HTTP_REDIRECT, str(response), destination,
                                    relay_state=query.get("RelayState", ""), response=True, sign=True,
                                    sigalg=SIG_RSA_SHA256)
        return message.name_id.text, dict(info["headers"])["Location"]


def _redirect_signature_ok(client: Saml2Client, idp: str, query: dict[str, str], kind: str) -> bool:
    """The HTTP-Redirect query signature (SAML Bindings §3.4.4.1) against the IdP's certificates."""
    from saml2.sigver import RSACrypto, verify_redirect_signature

    if not query.get("Signature") or query.get("SigAlg") != SIG_RSA_SHA256:
        return False
    certs = [cert for _name, cert in client.metadata.certs(idp, "idpsso", "signing")]
    signed = {name: query[name] for name in (kind, "RelayState", "SigAlg", "Signature") if name in query}
    return any(verify_redirect_signature(signed, RSACrypto(None), cert) for cert in certs)


def _status_of(exc: Exception) -> str | None:
    """The SAML status an error response carried: pysaml2 raises it as ``Status<Code>``
    (``StatusRequestDenied``, ``StatusAuthnFailed``, ``StatusNoPassive``; ``StatusError`` else)."""
    from saml2.response import StatusError

    if isinstance(exc, StatusError):
        return type(exc).__name__.removeprefix("Status")
    return None
