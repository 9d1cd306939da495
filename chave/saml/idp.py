"""The SAML 2.0 protocol work, done by pysaml2 (its XML signatures by libxmlsec1, in process: :class:`XmlSec1`).

pysaml2 is the maintained Python SAML library that has an identity-provider side (python3-saml is
service-provider only): it parses and verifies AuthnRequests against the SP's metadata, and builds
and signs metadata, responses and assertions. This module configures it for Chave (one
:class:`ChaveIdp` per message, loaded with the IdP's key and the one SP's metadata) and adds what
autenticacao.gov portals expect that SAML does not: ``fa:AttributeStatus`` on each attribute and
``OneTimeUse`` in the conditions.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import threading
from dataclasses import dataclass

import saml2.sigver
from django.conf import settings
from saml2 import BINDING_HTTP_POST, BINDING_HTTP_REDIRECT, SamlBase, saml, samlp
from saml2.config import IdPConfig
from saml2.metadata import entity_descriptor, sign_entity_descriptor
from saml2.saml import NAME_FORMAT_URI, NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT
from saml2.sdb import SessionStorage
from saml2.server import Server
from saml2.sigver import (
    CryptoBackendXmlSec1,
    RSACrypto,
    security_context,
)
from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

from chave import policy

from . import keys

FA_NS = "http://autenticacao.cartaodecidadao.pt/atributos"
PP_NS = "http://autenticacao.cartaodecidadao.pt/presentationpolicy"
STORK_NS = "urn:eu:stork:names:tc:STORK:1.0:assertion"
XMLSEC1 = "/usr/bin/xmlsec1"


def base_url() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


def entity_id() -> str:
    return base_url() + "/saml/metadata"


def sso_url() -> str:
    return base_url() + "/saml/sso"


def slo_url() -> str:
    return base_url() + "/saml/slo"


def _config(key_path: str, cert_path: str, sp_metadata: list[str], additional_certs: list[str]) -> IdPConfig:
    lifetime = {"seconds": policy.get("saml_assertion_seconds")}
    config = IdPConfig()
    config.load({
        "entityid": entity_id(),
        "xmlsec_binary": XMLSEC1,
        "key_file": key_path,
        "cert_file": cert_path,
        "additional_cert_files": additional_certs or None,
        "metadata": {"inline": list(sp_metadata)} if sp_metadata else {},
        "signing_algorithm": SIG_RSA_SHA256,
        "digest_algorithm": DIGEST_SHA256,
        "accepted_time_diff": policy.get("saml_request_max_age_seconds"),
        "service": {"idp": {
            "name": "Chave",
            "endpoints": {
                "single_sign_on_service": [(sso_url(), BINDING_HTTP_REDIRECT), (sso_url(), BINDING_HTTP_POST)],
                "single_logout_service": [(slo_url(), BINDING_HTTP_REDIRECT), (slo_url(), BINDING_HTTP_POST)],
            },
            "name_id_format": [NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT],
            "want_authn_requests_signed": True,
            "want_authn_requests_only_with_valid_cert": False,
            "sign_response": True,
            "sign_assertion": True,
            "policy": {"default": {"lifetime": lifetime, "name_form": NAME_FORMAT_URI,
                                   "attribute_restrictions": None}},
        }},
    })
    return config


@dataclass(frozen=True)
class Released:
    """One requested attribute in the answer: its URI, ``fa:AttributeStatus`` and value."""

    uri: str
    status: str  # Available | NotAvailable | Withheld
    value: str | None = None


class ChaveIdp(Server):
    """pysaml2's IdP, writing the attribute statement the autenticacao.gov way."""

    released: list[Released] = []
    address: str | None = None
    # The AuthnStatement's SessionIndex: the one Chave names again when it logs the SP out
    # (pysaml2 would make a random one per assertion).
    session_index: str | None = None

    def setup_assertion(self, *args, **kwargs):
        assertion = super().setup_assertion(*args, **kwargs)
        if not isinstance(assertion, saml.Assertion):
            return assertion
        attributes = []
        for item in self.released:
            attribute = saml.Attribute(name=item.uri, name_format=NAME_FORMAT_URI,
                                       extension_attributes={f"{{{FA_NS}}}AttributeStatus": item.status})
            if item.value is not None:
                attribute.attribute_value = [saml.AttributeValue(text=item.value)]
                attribute.attribute_value[0].set_type("xs:string")
            attributes.append(attribute)
        assertion.attribute_statement = [saml.AttributeStatement(attribute=attributes)] if attributes else []
        assertion.conditions.condition = list(assertion.conditions.condition or [])
        assertion.conditions.one_time_use = [saml.OneTimeUse()]
        if self.session_index:
            for statement in assertion.authn_statement:
                statement.session_index = self.session_index
        if self.address:
            for confirmation in assertion.subject.subject_confirmation:
                confirmation.subject_confirmation_data.address = self.address
        return assertion


class XmlSec1(CryptoBackendXmlSec1):
    """pysaml2's xmlsec1 backend, for Chave's messages, run in this process.

    The XML signature work is libxmlsec1's, through its Python bindings (``xmlsec``) rather than
    the ``xmlsec1`` program pysaml2 starts for each message (a process per request cost a login
    more than all of Chave's own work on it):

    - checking an SP's request: pysaml2 still decides what must be signed and how (its checks
      before it asks: one Reference, to the request's own ID, the allowed transforms, no
      ``ds:Object``, schema-valid); this does what it asked the program to do with the same
      options (``--pubkey-cert-pem``, ``--enabled-key-data raw-x509-cert``, ``--id-attr:ID``,
      ``--node-id``): verify the Signature of the one element of that name with that ID with
      the registered certificate's key, and nothing the message carries;
    - signing Chave's own responses, with the key in memory (the unsealed key is never written to
      a file; it is imported once per process, :func:`_xmlsec_key`).

    xmlsec1's version is asked once per process rather than before every operation.
    """

    signing_key = None  # an xmlsec.Key, for the message being signed

    @property
    def version(self):
        return _xmlsec1_version()

    def validate_signature(self, signedtext, cert_file, cert_type, node_name, node_id):
        import xmlsec
        from lxml import etree

        if cert_type != "pem" or not node_id:
            return super().validate_signature(signedtext, cert_file, cert_type, node_name, node_id)
        namespace, _sep, name = node_name.rpartition(":")
        try:
            parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)
            root = etree.fromstring(signedtext.encode() if isinstance(signedtext, str) else signedtext, parser)
            nodes = [e for e in root.iter() if isinstance(e.tag, str) and e.get("ID") == node_id]
            if len(nodes) != 1 or nodes[0].tag != f"{{{namespace}}}{name}":
                return False  # none, or an ID given twice (a wrapping attack), or another element's
            node = nodes[0]
            signatures = node.findall(f"{{{xmlsec.constants.DSigNs}}}Signature")
            references = [r for s in signatures for r in s.iter(f"{{{xmlsec.constants.DSigNs}}}Reference")]
            if len(signatures) != 1 or [r.get("URI") for r in references] != [f"#{node_id}"]:
                return False
            context = xmlsec.SignatureContext()
            context.set_enabled_key_data([xmlsec.constants.KeyDataRawX509Cert])
            context.key = xmlsec.Key.from_file(cert_file, xmlsec.constants.KeyDataFormatCertPem)
            context.register_id(node, "ID")
            context.verify(signatures[0])
        except (etree.Error, xmlsec.Error, ValueError):
            return False
        return True

    def sign_statement(self, statement, node_name, key_file, node_id):
        if self.signing_key is None:
            return super().sign_statement(statement, node_name, key_file, node_id)
        import xmlsec
        from lxml import etree

        text = str(statement) if isinstance(statement, SamlBase) else statement
        parser = etree.XMLParser(resolve_entities=False, no_network=True)  # our own message
        root = etree.fromstring(text.encode() if isinstance(text, str) else text, parser)
        xmlsec.tree.add_ids(root, ["ID"])
        node = root.xpath("//*[@ID=$id]", id=node_id)[0] if node_id else root
        signature = [child for child in node.findall(f"{{{xmlsec.constants.DSigNs}}}Signature")][0]
        context = xmlsec.SignatureContext()
        context.key = self.signing_key  # the context takes its own reference
        context.sign(signature)
        return etree.tostring(root, xml_declaration=True, encoding="UTF-8").decode()


# The schemas pysaml2 validates messages against (``saml2.xml.schema``: the namespaces it loads, in
# its own copies of the files), and the W3C addresses those files import each other by.
_SCHEMA_FILES = {
    "http://www.w3.org/XML/1998/namespace": "xml.xsd",
    "http://schemas.xmlsoap.org/soap/envelope/": "envelope.xsd",
    "http://www.w3.org/2001/04/xmlenc#": "xenc-schema.xsd",
    "http://www.w3.org/2009/xmlenc11#": "xenc-schema-11.xsd",
    "http://www.w3.org/2000/09/xmldsig#": "xmldsig-core-schema.xsd",
    "urn:oasis:names:tc:SAML:2.0:assertion": "saml-schema-assertion-2.0.xsd",
    "urn:oasis:names:tc:SAML:2.0:metadata": "saml-schema-metadata-2.0.xsd",
    "urn:oasis:names:tc:SAML:2.0:protocol": "saml-schema-protocol-2.0.xsd",
    "http://eidas.europa.eu/metadata/servicelist": "eidas-schema-metadata-servicelist.xsd",
    "http://eidas.europa.eu/saml-extensions": "eidas-schema-saml-extensions.xsd",
    "http://eidas.europa.eu/attributes/naturalperson": "eidas-schema-attribute-naturalperson.xsd",
    "http://eidas.europa.eu/attributes/legalperson": "eidas-schema-attribute-legalperson.xsd",
}
_IMPORTED_BY_ADDRESS = {
    "http://www.w3.org/TR/2002/REC-xmldsig-core-20020212/xmldsig-core-schema.xsd": "xmldsig-core-schema.xsd",
    "http://www.w3.org/TR/2002/REC-xmlenc-core-20021210/xenc-schema.xsd": "xenc-schema.xsd",
    "http://www.w3.org/2001/xml.xsd": "xml.xsd",
}


@functools.cache
def _schema():
    """Those schemas, compiled once by libxml2: a schema of nothing but their imports, each file
    read from pysaml2's folder (never from the network)."""
    from importlib.resources import files
    from pathlib import Path

    from lxml import etree

    import saml2.data.schemas

    folder = Path(str(files(saml2.data.schemas)))

    class Local(etree.Resolver):
        def resolve(self, url, pubid, context):
            name = _IMPORTED_BY_ADDRESS.get(url)
            return self.resolve_filename(str(folder.joinpath(name)), context) if name else None

    parser = etree.XMLParser(no_network=True, resolve_entities=False, load_dtd=False)
    parser.resolvers.add(Local())
    imports = "".join(f'<xs:import namespace="{namespace}" schemaLocation="{folder.joinpath(name).as_uri()}"/>'
                      for namespace, name in _SCHEMA_FILES.items())
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    return etree.XMLSchema(etree.fromstring(driver, parser))


def validate_with_schema(doc: str) -> None:
    """What pysaml2 checks before it verifies a message's signature (``saml2.xml.schema.validate``:
    the message, as pysaml2 re-serialises it, valid against the SAML schemas and those it loads
    beside them, eIDAS's among them), done by libxml2 (lxml) with the same schema files rather
    than by the pure-Python ``xmlschema``, which took more CPU than all the rest of a request's
    checks (some 5 ms a message against 0.2).

    pysaml2 offers no setting for it: its ``sigver`` module calls the function it imported, so
    that name is pointed here, for the whole process, when this module loads (tested to answer
    as pysaml2's own check: ``test_signature_check``)."""
    from lxml import etree

    from saml2.xml.schema import XMLSchemaError

    try:
        root = etree.fromstring(doc.encode(), etree.XMLParser(no_network=True, resolve_entities=False))
        _schema().assertValid(root)
    except (etree.Error, ValueError) as e:
        raise XMLSchemaError({"doc": doc, "error": str(e)}) from e


saml2.sigver.validate_doc_with_schema = validate_with_schema


@functools.cache
def _xmlsec1_version() -> str:
    return CryptoBackendXmlSec1.version.fget(CryptoBackendXmlSec1(XMLSEC1))


@functools.lru_cache(maxsize=4)
def _rsa_key(kid: str, sealed: str, secret: str):
    """The IdP's private key as pysaml2 signs Redirect-binding messages with it, unsealed and
    imported once per key (importing checks the key, which costs more than the signature)."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    return load_pem_private_key(keys.unsealed_pem(sealed, secret).encode(), None)


@functools.lru_cache(maxsize=4)
def _xmlsec_key(kid: str, sealed: str, secret: str):
    """The IdP's private key as libxmlsec1 signs responses with it, unsealed and imported once per
    key: a key's first signature also works out what OpenSSL then keeps with the key (its
    Montgomery forms), so a key imported per message made each signature cost twice as much."""
    import xmlsec

    return xmlsec.Key.from_memory(keys.unsealed_pem(sealed, secret).encode(), xmlsec.constants.KeyDataFormatPem)


class _NoAssertionStore(SessionStorage):
    """pysaml2's IdP keeps, in memory, every assertion it issues and every authentication statement
    by subject (for its Assertion ID Request and Authn Query services, which Chave does not offer),
    with no end: a process kept each citizen's released attributes from every SAML login it
    answered, some 11 KB a login. Chave's sessions and ``SessionIndex`` are its own (the SSO
    session, :func:`chave.saml.services.session_index`), so nothing is kept here."""

    def store_assertion(self, assertion, to_sign):
        return None


_servers = threading.local()
_SERVERS_PER_THREAD = 64


def _server(sp_metadata: list[str]) -> ChaveIdp:
    """This thread's pysaml2 IdP for these SPs, without a key: loading the configuration and the
    SPs' metadata costs more than the signature checks it then does, so it is kept per thread
    (each thread's own: the signing key is put in and taken out per message) and per metadata
    content, policy and address."""
    cache = getattr(_servers, "by_key", None)
    if cache is None:
        cache = _servers.by_key = {}
    key = (entity_id(), policy.get("saml_assertion_seconds"), policy.get("saml_request_max_age_seconds"),
           tuple(hashlib.sha256(m.encode()).hexdigest() for m in sp_metadata))
    server = cache.get(key)
    if server is None:
        if len(cache) >= _SERVERS_PER_THREAD:
            cache.clear()
        server = cache[key] = ChaveIdp(config=_config(None, None, list(sp_metadata), []))
        server.session_db = _NoAssertionStore()
        # pysaml2 loads its attribute maps into the configuration, but looks for them in the IdP's
        # part of it when it writes an assertion, finds none, and builds every map it ships again
        # for each assertion (Chave writes the attributes itself: setup_assertion).
        server.config.setattr("idp", "attribute_converters", server.config.getattr("attribute_converters", ""))
        server.sec.sec_backend = RSACrypto(None)  # verifies Redirect-binding signatures with the SP's certificate
        server.sec.crypto = XmlSec1(XMLSEC1)
    server.released, server.address, server.session_index = [], None, None
    return server


@contextlib.contextmanager
def idp(sp_metadata: list[str] = (), *, signing: bool = False):
    """A pysaml2 IdP for one message, knowing the SPs involved; with ``signing``, holding the
    active key (unsealed, in memory, for the message's duration)."""
    server = _server(list(sp_metadata))
    if not signing:
        yield server
        return
    sec = server.sec
    active = keys.active_key()
    sec.key_file = "(in memory)"  # XmlSec1 signs with signing_key
    sec.my_cert = keys.certificate_base64(active)
    sec.crypto.signing_key = _xmlsec_key(active.kid, active.private_key_sealed, settings.CHAVE_KEY_SEAL_SECRET)
    sec.sec_backend = RSACrypto(_rsa_key(active.kid, active.private_key_sealed, settings.CHAVE_KEY_SEAL_SECRET))
    try:
        yield server
    finally:
        sec.key_file = sec.my_cert = sec.crypto.signing_key = None
        sec.sec_backend = RSACrypto(None)


@contextlib.contextmanager
def _metadata_idp():
    """A pysaml2 IdP configured with every published certificate, for the metadata."""
    published = keys.published()
    with contextlib.ExitStack() as stack:
        key_path, cert_path = stack.enter_context(keys.signing_files(published[0]))
        extra = [stack.enter_context(keys.signing_files(row))[1] for row in published[1:]]
        yield ChaveIdp(config=_config(key_path, cert_path, [], extra))


def metadata() -> str:
    """The IdP's metadata (SSO and SLO for both bindings, NameID formats, signing certificates),
    signed with the active key."""
    with _metadata_idp() as server:
        descriptor = entity_descriptor(server.config)
        descriptor.idpsso_descriptor.want_authn_requests_signed = "true"
        descriptor.extensions = None  # pysaml2's algorithm list names MD5 and SHA-1, which Chave never signs with
        secc = security_context(server.config)
        _, signed = sign_entity_descriptor(descriptor, None, secc, sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    return str(signed)


def status(top: str, sub: str | None = None, message: str = "") -> samlp.Status:
    code = samlp.StatusCode(value=top, status_code=samlp.StatusCode(value=sub) if sub else None)
    return samlp.Status(status_code=code, status_message=samlp.StatusMessage(text=message) if message else None)


def encoded(xml: str) -> str:
    return base64.b64encode(xml.encode()).decode()
