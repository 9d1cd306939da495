"""Every rule on requests and every kind of bad input: a page (400, nothing signed, no form to any
address) before the SP and ACS are known; a signed SAML error status to the ACS after."""

import datetime as dt

import pytest

from chave.federation import services as federation

from .bad_requests import b64, hostile, signed_xml
from .conftest import register
from .sp import form_fields, pysaml2_portal

pytestmark = pytest.mark.django_db(transaction=True)


def send(client, method, params):
    if method == "post":
        return client.post("/saml/sso", params)
    return client.get("/saml/sso", params)


def assert_refused_with_a_page(response):
    page = response.content.decode()
    assert response.status_code == 400, page[:1000]
    assert 'name="SAMLResponse"' not in page and '<form method="post" action="http' not in page
    assert "This sign-in cannot continue" in page or "Esta autenticação não pode continuar" in page


def test_each_hostile_request_gets_a_page_and_nothing_signed(client, portal):
    for what, method, params in hostile(portal):
        response = send(client, method, params)
        assert response.status_code == 400, (what, response.status_code, response.content[:500])
        assert_refused_with_a_page(response)


def test_a_request_signed_by_another_key_is_refused(client, tmp_path, idp_metadata, portal):
    impostor = pysaml2_portal(tmp_path / "other" if (tmp_path / "other").mkdir() is None else tmp_path,
                              idp_metadata, name="impostor")  # same entity ID, its own key
    _, form = impostor.authn_request()
    assert_refused_with_a_page(client.post("/saml/sso", form))


def test_an_unknown_unapproved_or_suspended_sp_gets_a_page(client, tmp_path, idp_metadata):
    stranger = pysaml2_portal(tmp_path, idp_metadata, host="stranger.example.pt", name="stranger")
    assert_refused_with_a_page(client.post("/saml/sso", stranger.authn_request()[1]))
    waiting = pysaml2_portal(tmp_path, idp_metadata, host="waiting.example.pt", name="waiting")
    register(waiting.metadata_xml, approve=False)
    assert_refused_with_a_page(client.post("/saml/sso", waiting.authn_request()[1]))
    suspended = pysaml2_portal(tmp_path, idp_metadata, host="suspended.example.pt", name="suspended")
    sp = register(suspended.metadata_xml)
    federation.decide(sp.relying_party, "suspend", by="test", reason="test")
    assert_refused_with_a_page(client.post("/saml/sso", suspended.authn_request()[1]))


def test_an_acs_the_sp_did_not_register_gets_a_page(client, portal):
    _, form = portal.authn_request(acs="https://evil.example/acs")
    assert_refused_with_a_page(client.post("/saml/sso", form))


def error_status(portal, response, request_id):
    page = response.content.decode()
    assert response.status_code == 200, page[:1000]
    with pytest.raises(Exception) as failure:
        portal.read_response(form_fields(page)["SAMLResponse"], request_id)
    return str(failure.value)


def test_a_replayed_request_is_answered_once(client, portal):
    request_id, form = portal.authn_request()
    first = client.post("/saml/sso", form)
    assert first.status_code == 302 and first["Location"].startswith("/saml/continue/")
    again = client.post("/saml/sso", form)
    assert "RequestDenied" in error_status(portal, again, request_id)
    # The browser's one-use reference cannot be used twice either.
    assert client.get(first["Location"]).status_code == 302
    assert_refused_with_a_page(client.get(first["Location"]))


def test_a_wrong_destination_is_answered_requester(client, portal, settings):
    request_id, xml = portal.client.create_authn_request(
        "https://other-idp.example/sso", binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", sign=True,
        assertion_consumer_service_url=portal.acs)
    response = client.post("/saml/sso", {"SAMLRequest": b64(str(xml))})
    # Either pysaml2 refuses it outright (a page) or Chave answers Requester to the registered ACS.
    if response.status_code == 400:
        assert_refused_with_a_page(response)
    else:
        assert "Requester" in error_status(portal, response, request_id)


def test_a_stale_or_future_request_is_answered_requester(client, portal, clock):
    request_id, xml = signed_xml(portal)
    clock.travel(dt.timedelta(minutes=6))
    response = client.post("/saml/sso", {"SAMLRequest": b64(xml)})
    assert "too old" in error_status(portal, response, request_id)
    clock.travel(dt.timedelta(minutes=-12))
    response = client.post("/saml/sso", {"SAMLRequest": b64(xml)})
    assert "too old, or from the future" in error_status(portal, response, request_id)


def test_relay_state_of_80_bytes_is_returned_unchanged(client, portal):
    relay = "R" * 80
    _, form = portal.authn_request(relay_state=relay)
    response = client.post("/saml/sso", form)
    assert response.status_code == 302
    _, too_long = portal.authn_request(relay_state=relay + "R")
    assert_refused_with_a_page(client.post("/saml/sso", too_long))


def test_a_bad_faaa_level_is_answered_requester(client, portal):
    from .sp import fa_extensions

    ext = fa_extensions({"NIC": True})
    from saml2 import ExtensionElement

    ext.extension_elements.append(ExtensionElement("FAAALevel", namespace="http://autenticacao.cartaodecidadao.pt/"
                                                   "atributos", text="9"))
    request_id, form = portal.authn_request(extensions=ext)
    assert "FAAALevel" in error_status(portal, client.post("/saml/sso", form), request_id)
