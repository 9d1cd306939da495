"""An SP's request signature is checked in this process (``chave.saml.idp.XmlSec1``), not by
the ``xmlsec1`` program pysaml2 would start for each request: for the same question (this
certificate, this element, this ID) it answers what the program answers, and it refuses by
itself the signature tricks the program leaves to pysaml2's checks before it asks."""

from __future__ import annotations

import re

import pytest
from saml2.sigver import CryptoBackendXmlSec1

from chave.saml import idp

from .bad_requests import signature_moved, signed_xml, wrapped

pytestmark = pytest.mark.django_db

NODE = "urn:oasis:names:tc:SAML:2.0:protocol:AuthnRequest"


def program(xml: str, cert_file: str, node_id: str) -> bool:
    try:
        return bool(CryptoBackendXmlSec1(idp.XMLSEC1).validate_signature(xml, cert_file, "pem", NODE, node_id))
    except Exception:  # the program's refusals are exceptions
        return False


def in_process(xml: str, cert_file: str, node_id: str) -> bool:
    return idp.XmlSec1(idp.XMLSEC1).validate_signature(xml, cert_file, "pem", NODE, node_id)


def test_the_answers_are_the_xmlsec1_programs(portal, tmp_path, idp_metadata):
    from .sp import pysaml2_portal

    other = pysaml2_portal(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path,
                           idp_metadata, name="other")
    request_id, good = signed_xml(portal)
    cases = {
        "as signed": (good, portal.cert_file, request_id, True),
        "another certificate": (good, other.cert_file, request_id, False),
        "changed after signing": (good.replace(portal.acs, portal.acs + "?x=1", 1), portal.cert_file, request_id, False),
        "another ID asked for": (good, portal.cert_file, "id-other", False),
    }
    for what, (xml, cert_file, node_id, expected) in cases.items():
        assert in_process(xml, cert_file, node_id) is expected, what
        assert program(xml, cert_file, node_id) is expected, what
    # The signed request inside an unsigned one: the program verifies the first signature it finds
    # under the element named (the inner request's, valid); only the element's own counts here.
    assert program(wrapped(portal), portal.cert_file, "id-wrapper")
    assert not in_process(wrapped(portal), portal.cert_file, "id-wrapper")


def test_signature_tricks_are_refused(portal):
    moved = signature_moved(portal)
    request_id = re.search(r' ID="([^"]+)"', moved).group(1)
    # The outer request carries the signature of the inner one, which has the same ID: the ID is
    # given twice, so which element it names is ambiguous.
    assert not in_process(moved, portal.cert_file, request_id)
    _, good = signed_xml(portal)
    request_id = re.search(r' ID="([^"]+)"', good).group(1)
    # A Reference to something else than the signed request itself.
    retargeted = good.replace(f'URI="#{request_id}"', 'URI=""', 1)
    assert retargeted != good and not in_process(retargeted, portal.cert_file, request_id)
    # Not XML, or a document with an entity declaration.
    assert not in_process("<not xml", portal.cert_file, request_id)
    assert not in_process('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>',
                          portal.cert_file, request_id)


def _with_unheard_element(xml: str) -> str:
    return re.sub(r"</(\w+):AuthnRequest>\s*$", r"<\1:Unheard>x</\1:Unheard></\1:AuthnRequest>", xml)


def _in_extensions(xml: str, sp_type: str) -> str:
    element = f'<eidas:SPType xmlns:eidas="http://eidas.europa.eu/saml-extensions">{sp_type}</eidas:SPType>'
    changed = re.sub(r"(<(\w+):Extensions>)", lambda m: m.group(1) + element, xml, count=1)
    assert changed != xml
    return changed


def _schema_cases(portal) -> dict[str, tuple[str, bool]]:
    """Requests as pysaml2 hands them to its schema check, and whether they are schema-valid."""
    request_id, good = signed_xml(portal)
    good = re.sub(r"^<\?xml[^>]*\?>", "", good)
    return {
        "as signed": (good, True),
        "a boolean that is not one": (good.replace(f'ID="{request_id}"', f'ID="{request_id}" ForceAuthn="perhaps"', 1),
                                      False),
        "no Version": (re.sub(r' Version="2.0"', "", good, count=1), False),
        "an element the protocol does not have": (
            _with_unheard_element(good), False),
        "an element out of its place": (re.sub(r"(<ns1:Issuer[^>]*>[^<]*</ns1:Issuer>)(.*)(</ns0:AuthnRequest>)",
                                               r"\2\1\3", good, count=1, flags=re.S), False),
        "an eIDAS extension as eIDAS defines it": (_in_extensions(good, "public"), True),
        "an eIDAS extension eIDAS does not allow": (_in_extensions(good, "everyone"), False),
        "not XML": ("<ns0:AuthnRequest", False),
    }


def test_the_schema_check_answers_as_pysaml2s_own(portal):
    """pysaml2 checks a request against the SAML schema before its signature; Chave has it done by
    libxml2 (``idp.validate_with_schema``) with the same schema files, and it answers as
    pysaml2's own check (``saml2.xml.schema.validate``, pure-Python ``xmlschema``) does."""
    import saml2.sigver
    from saml2.xml.schema import XMLSchemaError
    from saml2.xml.schema import validate as pysaml2s

    assert saml2.sigver.validate_doc_with_schema is idp.validate_with_schema
    cases = _schema_cases(portal)
    good = cases["as signed"][0]
    assert "ns0:AuthnRequest" in good and all(xml != good for what, (xml, _) in cases.items() if what != "as signed")
    for what, (xml, valid) in cases.items():
        for check in (pysaml2s, idp.validate_with_schema):
            try:
                check(xml)
                answer = True
            except XMLSchemaError:
                answer = False
            assert answer is valid, (what, check)


def test_a_signed_request_the_schema_refuses_is_refused(client, portal):
    """Correctly signed by the portal, but not a valid AuthnRequest: refused with a page."""
    from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    from .bad_requests import b64
    from .test_bad_input import assert_refused_with_a_page

    request_id, xml = portal.client.create_authn_request(
        idp.sso_url(), binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", sign=False,
        assertion_consumer_service_url=portal.acs)
    key, cert = open(portal.key_file).read(), open(portal.cert_file).read()
    for broken in (str(xml).replace(f'ID="{request_id}"', f'ID="{request_id}" ForceAuthn="perhaps"', 1),
                   _with_unheard_element(str(xml))):
        assert broken != str(xml)
        signed = OneLogin_Saml2_Utils.add_sign(broken, key, cert, sign_algorithm=C.RSA_SHA256,
                                               digest_algorithm=C.SHA256)
        assert_refused_with_a_page(client.post("/saml/sso", {"SAMLRequest": b64(signed)}))
    # The same request, well-formed and signed the same way, is accepted: the refusals were the schema's.
    signed = OneLogin_Saml2_Utils.add_sign(str(xml), key, cert, sign_algorithm=C.RSA_SHA256, digest_algorithm=C.SHA256)
    response = client.post("/saml/sso", {"SAMLRequest": b64(signed)})
    assert response.status_code == 302, response.content[:500]
