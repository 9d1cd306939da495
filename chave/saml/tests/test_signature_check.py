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
