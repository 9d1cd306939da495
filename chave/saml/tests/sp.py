"""Service providers for the tests: a real pysaml2 SP (``Saml2Client``) and the raw pieces a
portal built from the autenticacao.gov manual sends (signed with python3-saml's xmlsec bindings).

Each SP has its own key and certificate (made here), publishes metadata that is registered in
Chave's registry the way an operator does (``chave rp add --saml-metadata``), and validates
Chave's responses with its library: signatures against Chave's metadata, audience, recipient,
``InResponseTo`` and time conditions.
"""

from __future__ import annotations

import base64
import datetime as dt
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, BINDING_SOAP, samlp
from saml2.client import Saml2Client
from saml2.config import SPConfig
from saml2.metadata import entity_descriptor
from saml2.saml import NAMEID_FORMAT_PERSISTENT
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.settings import OneLogin_Saml2_Settings

from chave.oidc.management.commands.demo_portal import portal_module
from chave.saml import idp

FA = idp.FA_NS
PP = idp.PP_NS


def make_key_pair(folder: Path, name: str) -> tuple[str, str]:
    """(key file, certificate file) of a new self-signed RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30)).sign(key, hashes.SHA256()))
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.crt"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(key_path), str(cert_path)


# The autenticacao.gov extensions as the manual writes them (``isRequired="True"``), built as the
# SAML demo portal builds them: fa_extensions(attributes={short name: required}, level, hide, default_tab).
fa_extensions = portal_module("saml").fa_extensions


@dataclass
class Pysaml2Portal:
    """A portal on pysaml2: its client, metadata and the ACS it registered."""

    client: Saml2Client
    entity_id: str
    acs: str
    metadata_xml: str
    key_file: str
    cert_file: str

    def authn_request(self, *, extensions=None, relay_state: str | None = "volta=/inicio", force_authn=None,
                      is_passive=None, binding=BINDING_HTTP_POST, sign_alg=SIG_RSA_SHA256,
                      digest_alg=DIGEST_SHA256, name_id_format=NAMEID_FORMAT_PERSISTENT, acs: str | None = None,
                      **kwargs) -> tuple[str, dict]:
        """(request ID, the form or query a browser would send to Chave's SSO service)."""
        if binding == BINDING_HTTP_POST:
            request_id, xml = self.client.create_authn_request(
                idp.sso_url(), binding=BINDING_HTTP_POST, sign=True, sign_alg=sign_alg, digest_alg=digest_alg,
                extensions=extensions, force_authn=force_authn, is_passive=is_passive,
                nameid_format=name_id_format, assertion_consumer_service_url=acs or self.acs, **kwargs)
            form = {"SAMLRequest": base64.b64encode(str(xml).encode()).decode()}
            if relay_state is not None:
                form["RelayState"] = relay_state
            return request_id, form
        request_id, xml = self.client.create_authn_request(
            idp.sso_url(), binding=BINDING_HTTP_POST, sign=False, extensions=extensions, force_authn=force_authn,
            is_passive=is_passive, nameid_format=name_id_format, assertion_consumer_service_url=acs or self.acs,
            **kwargs)
        info = self.client.apply_binding(BINDING_HTTP_REDIRECT, str(xml), idp.sso_url(), relay_state=relay_state or "",
                                         sign=True, sigalg=sign_alg)
        location = dict(info["headers"])["Location"]
        query = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
        return request_id, query

    def read_response(self, saml_response: str, request_id: str):
        """The library's verdict: an ``AuthnResponse`` (raises when Chave's signature, audience,
        recipient, InResponseTo or times do not hold, or the status is an error)."""
        return self.client.parse_authn_request_response(saml_response, BINDING_HTTP_POST,
                                                        outstanding={request_id: "/"})


def pysaml2_portal(folder: Path, idp_metadata: str, *, host: str = "portal.example.pt",
                   name: str = "portal", scheme: str = "https",
                   slo_bindings: tuple[str, ...] = (BINDING_HTTP_REDIRECT,)) -> Pysaml2Portal:
    """A pysaml2 SP; its logout service at ``/saml/slo`` for each of ``slo_bindings`` (SOAP at
    ``/saml/soap-slo``)."""
    key_file, cert_file = make_key_pair(folder, name)
    entity_id = f"{scheme}://{host}/saml/metadata"
    acs = f"{scheme}://{host}/saml/acs"
    config = SPConfig()
    config.load({
        "entityid": entity_id,
        "xmlsec_binary": idp.XMLSEC1,
        "key_file": key_file,
        "cert_file": cert_file,
        "metadata": {"inline": [idp_metadata]},
        "allow_unknown_attributes": True,
        "accepted_time_diff": 60,
        "service": {"sp": {
            "endpoints": {
                "assertion_consumer_service": [(acs, BINDING_HTTP_POST)],
                "single_logout_service": [
                    (f"{scheme}://{host}/saml/{'soap-slo' if binding == BINDING_SOAP else 'slo'}", binding)
                    for binding in slo_bindings],
            },
            "authn_requests_signed": True,
            "want_response_signed": True,
            "want_assertions_signed": True,
            "allow_unsolicited": False,
        }},
    })
    metadata_xml = str(entity_descriptor(config))
    return Pysaml2Portal(Saml2Client(config), entity_id, acs, metadata_xml, key_file, cert_file)


def deflate_b64(xml: bytes) -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return base64.b64encode(compressor.compress(xml) + compressor.flush()).decode()


def form_fields(page: str) -> dict[str, str]:
    """The hidden fields of Chave's HTTP-POST page (what the citizen's button sends to the ACS)."""
    import html
    import re

    return {name: html.unescape(value)
            for name, value in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}


def form_action(page: str) -> str:
    import html
    import re

    return html.unescape(re.search(r'<form method="post" action="([^"]+)">', page).group(1))


# --- A portal written from the autenticacao.gov manual, on python3-saml -----------------------------

HOST = "servicos.example.gov.pt"
ENTITY = f"https://{HOST}/sp"
ACS = f"https://{HOST}/sp/acs"


def onelogin_settings(tmp_path: Path, idp_metadata: str):
    key_file, cert_file = make_key_pair(tmp_path, "onelogin")
    key, cert = Path(key_file).read_text(), Path(cert_file).read_text()
    data = OneLogin_Saml2_IdPMetadataParser.parse(idp_metadata)
    data.update({
        "strict": True,
        "sp": {"entityId": ENTITY, "assertionConsumerService": {"url": ACS, "binding": C.BINDING_HTTP_POST},
               "NameIDFormat": C.NAMEID_PERSISTENT, "x509cert": cert, "privateKey": key},
        "security": {"authnRequestsSigned": True, "wantMessagesSigned": True, "wantAssertionsSigned": True,
                     "rejectDeprecatedAlgorithm": True},
    })
    return OneLogin_Saml2_Settings(data), key, cert


def manual_request(request_id: str, provider: str = "Portal de Serviços (teste)") -> str:
    """The AuthnRequest as the integration manual writes it."""
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f'''<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" \
xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="{request_id}" Version="2.0" IssueInstant="{now}" \
Destination="{idp.sso_url()}" Consent="urn:oasis:names:tc:SAML:2.0:consent:unspecified" \
ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" AssertionConsumerServiceURL="{ACS}" \
ProviderName="{provider}"><saml:Issuer>{ENTITY}</saml:Issuer><samlp:Extensions>\
<fa:RequestedAttributes xmlns:fa="http://autenticacao.cartaodecidadao.pt/atributos">\
<fa:RequestedAttribute Name="http://interop.gov.pt/MDC/Cidadao/NIC" \
NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="True" />\
<fa:RequestedAttribute Name="http://interop.gov.pt/MDC/Cidadao/NomeProprio" \
NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="False" />\
<fa:RequestedAttribute Name="http://interop.gov.pt/MDC/Cidadao/NIF" \
NameFormat="urn:oasis:names:tc:SAML:2.0:attrname-format:uri" isRequired="False" />\
</fa:RequestedAttributes><fa:FAAALevel xmlns:fa="http://autenticacao.cartaodecidadao.pt/atributos">3</fa:FAAALevel>\
</samlp:Extensions></samlp:AuthnRequest>'''


# --- A pysaml2 SP's SOAP logout service, on a real HTTP server on loopback ---------------------------


@dataclass
class SoapReceived:
    """What the SP's SOAP logout service was sent: the headers, and the LogoutRequest as pysaml2
    read it after checking Chave's signature (``must``: an unsigned one is refused)."""

    content_type: str
    soap_action: str
    envelope: str
    message: samlp.LogoutRequest | None
    error: str = ""


class SoapLogoutService:
    """A pysaml2 portal whose only logout service is SOAP, served on 127.0.0.1: it verifies each
    LogoutRequest with pysaml2 against Chave's metadata and answers a LogoutResponse signed with
    its own key (``Success``, or ``saml_status``). ``http_statuses`` are answered first, one per
    request, without a SAML answer (a portal down for a moment)."""

    def __init__(self, folder: Path, idp_metadata: str, *, name: str = "soap"):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.received: list[SoapReceived] = []
        self.http_statuses: list[int] = []
        self.saml_status: str | None = None
        self.lock = threading.Lock()
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                status, answer = service.answer(self.path, body, self.headers)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.portal = pysaml2_portal(folder, idp_metadata, host=f"127.0.0.1:{self.server.server_port}", name=name,
                                     scheme="http", slo_bindings=(BINDING_SOAP,))
        self.url = f"http://127.0.0.1:{self.server.server_port}/saml/soap-slo"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, path: str, body: str, headers) -> tuple[int, bytes]:
        from saml2.samlp import STATUS_REQUESTER, STATUS_SUCCESS

        client = self.portal.client
        with self.lock:
            scripted = self.http_statuses.pop(0) if self.http_statuses else None
        if path != "/saml/soap-slo":
            return 404, b""
        message, error = None, ""
        try:
            xml = client.unravel(body, BINDING_SOAP, "logout_request")
            client.sec.correctly_signed_logout_request(xml, must=True)  # raises unless Chave's signature holds
            message = client.parse_logout_request(body, BINDING_SOAP).message
        except Exception as exc:  # noqa: BLE001 - recorded for the test to see
            error = f"{exc.__class__.__name__}: {exc}"
        with self.lock:
            self.received.append(SoapReceived(headers.get("Content-Type", ""), headers.get("SOAPAction", ""), body,
                                              message, error))
        if scripted is not None:
            return scripted, b""
        if message is None:
            return 403, b""
        status = samlp.Status(status_code=samlp.StatusCode(
            value=STATUS_SUCCESS if self.saml_status is None else STATUS_REQUESTER,
            status_code=samlp.StatusCode(value=self.saml_status) if self.saml_status else None))
        response = client.create_logout_response(message, [BINDING_SOAP], status=status, sign=True,
                                                 sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
        info = client.apply_binding(BINDING_SOAP, response, "", sign=False)  # signed already (enveloped)
        return 200, info["data"].encode() if isinstance(info["data"], str) else info["data"]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
