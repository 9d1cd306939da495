"""What an SP receives: pairwise persistent NameIDs, the level as Chave's or eIDAS's URI, and
responses a key rotation does not break."""

import pytest
from saml2.saml import AuthnContextClassRef, NAMEID_FORMAT_PERSISTENT
from saml2.samlp import RequestedAuthnContext

from chave.federation.levels import EIDAS_LEVEL_URIS
from chave.oidc.tests.signin import sign_in
from chave.saml import keys

from .conftest import register
from .sp import fa_extensions, pysaml2_portal
from .test_sso import answer, follow, start

pytestmark = pytest.mark.django_db(transaction=True)


def login(client, outbox, portal, *, first=True, **kwargs):
    request_id, response = start(client, portal, **kwargs)
    response = follow(client, response)
    if response.status_code == 302 and response["Location"].endswith("/login/"):
        response = follow(client, sign_in(client, outbox, **({"identifier": kwargs.pop("identifier")}
                                                            if "identifier" in kwargs else {})))
    if response.status_code == 302 and response["Location"] == "/saml/consent":
        response = follow(client, client.post("/saml/consent", {"decision": "allow"}))
    return answer(portal, response, request_id)[1]


def test_persistent_name_ids_are_stable_per_sp_and_differ_between_sectors(client, make_citizen, outbox, portal,
                                                                          tmp_path, idp_metadata):
    make_citizen()
    other = pysaml2_portal(tmp_path, idp_metadata, host="outro.example.pt", name="outro")
    register(other.metadata_xml, name="Outro portal")
    extensions = fa_extensions({"NIC": True}, level=3)
    first = login(client, outbox, portal, extensions=extensions)
    again = login(client, outbox, portal, extensions=extensions)
    elsewhere = login(client, outbox, other, extensions=extensions)
    assert first.name_id.format == NAMEID_FORMAT_PERSISTENT
    assert first.name_id.text == again.name_id.text
    assert elsewhere.name_id.text != first.name_id.text


def test_an_eidas_level_asked_for_is_answered_with_the_eidas_uri(client, make_citizen, outbox, portal):
    make_citizen()
    context = RequestedAuthnContext(authn_context_class_ref=[AuthnContextClassRef(
        text=EIDAS_LEVEL_URIS[3])], comparison="minimum")
    result = login(client, outbox, portal, extensions=fa_extensions({"NIC": True}), requested_authn_context=context)
    assert result.assertion.authn_statement[0].authn_context.authn_context_class_ref.text == EIDAS_LEVEL_URIS[3]


def test_responses_after_a_key_rotation_verify_with_the_new_metadata(client, make_citizen, outbox, tmp_path):
    make_citizen()
    keys.rotate(by="test")
    metadata = client.get("/saml/metadata").content.decode()  # both certificates, the new one first
    portal = pysaml2_portal(tmp_path, metadata, host="rodado.example.pt", name="rodado")
    register(portal.metadata_xml)
    result = login(client, outbox, portal, extensions=fa_extensions({"NIC": True}, level=3))
    assert result.ava


def test_nothing_of_an_answer_stays_in_the_process(client, make_citizen, outbox, portal, monkeypatch):
    """pysaml2's IdP would keep every assertion it issued, attributes and all, for as long as the
    process lives; Chave's keeps none. Nor does it build pysaml2's attribute maps for each one."""
    import saml2.assertion

    from chave.saml import idp

    key = make_citizen()
    login(client, outbox, portal, extensions=fa_extensions({"NIC": True}, level=3))
    built = []
    factory = saml2.assertion.ac_factory
    monkeypatch.setattr(saml2.assertion, "ac_factory", lambda *args: built.append(args) or factory(*args))
    result = login(client, outbox, portal, first=False, extensions=fa_extensions({"NIC": True}, level=3))
    assert any(value.text == key.citizen.doc_number for statement in result.assertion.attribute_statement
               for attribute in statement.attribute for value in attribute.attribute_value)
    assert built == []
    servers = list(idp._servers.by_key.values())
    assert servers and all(not s.session_db.assertion and not s.session_db.authn for s in servers)
