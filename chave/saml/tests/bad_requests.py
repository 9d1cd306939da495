"""Hostile and broken AuthnRequests, for the SAML tests and the robustness sweep
(``chave/tests/test_no_server_errors.py``): each is (what, binding, parameters)."""

from __future__ import annotations

import base64
import datetime as dt
import re
import zlib

from saml2 import BINDING_HTTP_POST

from chave.saml import idp

from .sp import Pysaml2Portal, deflate_b64, fa_extensions


def signed_xml(portal: Pysaml2Portal, **kwargs) -> tuple[str, str]:
    request_id, xml = portal.client.create_authn_request(
        idp.sso_url(), binding=BINDING_HTTP_POST, sign=True, extensions=fa_extensions({"NIC": True}, level=3),
        assertion_consumer_service_url=portal.acs, **kwargs)
    return request_id, str(xml)


def b64(xml: str | bytes) -> str:
    return base64.b64encode(xml.encode() if isinstance(xml, str) else xml).decode()


def wrapped(portal: Pysaml2Portal, acs: str = "https://evil.example/acs") -> str:
    """Signature wrapping: the portal's signed request hidden inside an unsigned one asking for
    another ACS."""
    _, inner = signed_xml(portal)
    inner = re.sub(r"^<\?xml[^>]*\?>", "", inner)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="id-wrapper" Version="2.0" '
            f'IssueInstant="{now}" Destination="{idp.sso_url()}" AssertionConsumerServiceURL="{acs}">'
            f'<saml:Issuer>{portal.entity_id}</saml:Issuer><samlp:Extensions>{inner}</samlp:Extensions>'
            f'</samlp:AuthnRequest>')


def signature_moved(portal: Pysaml2Portal, acs: str = "https://evil.example/acs") -> str:
    """Signature wrapping, second form: the signed request's Signature put on an outer request of the
    same ID asking for another ACS, the signed original kept as its child."""
    _, inner = signed_xml(portal)
    inner = re.sub(r"^<\?xml[^>]*\?>", "", inner)
    signature = re.search(r"<ns\d:Signature .*?</ns\d:Signature>|<ds:Signature.*?</ds:Signature>", inner, re.S)
    request_id = re.search(r' ID="([^"]+)"', inner).group(1)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return (f'<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" '
            f'xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" '
            f'ID="{request_id}" Version="2.0" IssueInstant="{now}" Destination="{idp.sso_url()}" '
            f'AssertionConsumerServiceURL="{acs}"><saml:Issuer>{portal.entity_id}</saml:Issuer>'
            f'{signature.group(0) if signature else ""}<samlp:Extensions>{inner}</samlp:Extensions>'
            f'</samlp:AuthnRequest>')


ENTITIES = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
            '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>'
            '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0">'
            '<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">&c;</saml:Issuer></samlp:AuthnRequest>')
EXTERNAL = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<samlp:AuthnRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0">'
            '<saml:Issuer xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion">&x;</saml:Issuer></samlp:AuthnRequest>')


def deflate_bomb() -> str:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return base64.b64encode(compressor.compress(b" " * (20 * 1024 * 1024)) + compressor.flush()).decode()


def hostile(portal: Pysaml2Portal) -> list[tuple[str, str, dict]]:
    """Requests Chave must refuse with a page (400), never answering to an ACS."""
    _, unsigned = portal.client.create_authn_request(idp.sso_url(), binding=BINDING_HTTP_POST, sign=False,
                                                     assertion_consumer_service_url=portal.acs)
    _, good = signed_xml(portal)
    tampered = good.replace(portal.acs, portal.acs + "?x=1", 1)
    return [
        ("unsigned", "post", {"SAMLRequest": b64(str(unsigned))}),
        ("tampered after signing", "post", {"SAMLRequest": b64(tampered)}),
        ("signature wrapping", "post", {"SAMLRequest": b64(wrapped(portal))}),
        ("signature moved to a wrapper", "post", {"SAMLRequest": b64(signature_moved(portal))}),
        ("entity expansion", "post", {"SAMLRequest": b64(ENTITIES)}),
        ("external entity", "post", {"SAMLRequest": b64(EXTERNAL)}),
        ("entities by redirect", "get", {"SAMLRequest": deflate_b64(ENTITIES.encode())}),
        ("deflate bomb", "get", {"SAMLRequest": deflate_bomb()}),
        ("bad base64", "post", {"SAMLRequest": "%%%not base64%%%"}),
        ("bad deflate", "get", {"SAMLRequest": b64(b"not deflated at all")}),
        ("not XML", "post", {"SAMLRequest": b64(b"\x00\xff junk")}),
        ("not an AuthnRequest", "post", {"SAMLRequest": b64('<a xmlns="urn:x"/>')}),
        ("RelayState over 80 bytes", "post", {"SAMLRequest": b64(good), "RelayState": "r" * 81}),
        ("redirect binding unsigned", "get", {"SAMLRequest": deflate_b64(str(unsigned).encode())}),
        ("redirect binding bad signature", "get", {"SAMLRequest": deflate_b64(str(unsigned).encode()),
                                                   "SigAlg": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
                                                   "Signature": b64(b"x" * 256)}),
        ("repeated parameter", "post", {"SAMLRequest": [b64(good), b64(good)]}),
        ("no request", "post", {}),
    ]
