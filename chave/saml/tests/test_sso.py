"""Single sign-on with a real pysaml2 service provider, end to end through Chave's pages."""

import pytest
from saml2 import BINDING_HTTP_REDIRECT
from saml2.saml import NAMEID_FORMAT_PERSISTENT, NAMEID_FORMAT_TRANSIENT
from saml2.xmldsig import DIGEST_SHA1, SIG_RSA_SHA1

from chave.federation.attributes import PREFIX, subject
from chave.oidc.tests.signin import sign_in

from chave.saml.idp import FA_NS

from .sp import fa_extensions, form_action, form_fields

pytestmark = pytest.mark.django_db(transaction=True)


def start(client, portal, *, binding="post", **kwargs):
    if binding == "post":
        request_id, form = portal.authn_request(**kwargs)
        response = client.post("/saml/sso", form)
    else:
        request_id, query = portal.authn_request(binding=BINDING_HTTP_REDIRECT, **kwargs)
        response = client.get("/saml/sso", query)
    return request_id, response


def follow(client, response):
    while response.status_code == 302 and response["Location"].startswith("/saml/") \
            and response["Location"] != "/saml/consent":
        response = client.get(response["Location"])
    return response


def answer(portal, page_response, request_id):
    page = page_response.content.decode()
    assert page_response.status_code == 200, page[:2000]
    assert form_action(page) == portal.acs
    fields = form_fields(page)
    return fields, portal.read_response(fields["SAMLResponse"], request_id)


def test_a_portal_signs_a_citizen_in_with_the_fa_extensions(client, make_citizen, outbox, portal):
    key = make_citizen()
    request_id, response = start(client, portal, extensions=fa_extensions(
        {"NIC": True, "NomeCompleto": True, "DataNascimento": False}, level=3))
    response = follow(client, response)
    assert response.status_code == 302 and response["Location"].endswith("/login/")
    assert "Portal do Cidadão (teste)" in client.get("/login/").content.decode()
    response = follow(client, sign_in(client, outbox))
    assert response["Location"] == "/saml/consent"
    page = client.get("/saml/consent").content.decode()
    assert key.citizen.doc_number in page and "Maria Teste Silva" in page
    # NIC and the full name are required (isRequired="True"): only the birth date can be refused.
    assert 'name="attribute" value="DataNascimento"' in page and 'value="NIC"' not in page
    response = follow(client, client.post("/saml/consent", {"decision": "allow"}))  # birth date unticked
    fields, result = answer(portal, response, request_id)
    assert fields["RelayState"] == "volta=/inicio"
    assert result.name_id.format == NAMEID_FORMAT_PERSISTENT
    assert result.name_id.text == subject(portal.registration.relying_party, key.citizen)
    assert result.ava[PREFIX + "NIC"] == [key.citizen.doc_number]
    assert result.ava[PREFIX + "NomeCompleto"] == ["Maria Teste Silva"]
    assert not result.ava.get(PREFIX + "DataNascimento")  # withheld: no value
    assert attribute_statuses(result) == {PREFIX + "NIC": "Available", PREFIX + "NomeCompleto": "Available",
                                          PREFIX + "DataNascimento": "Withheld"}
    assertion = result.assertion
    assert assertion.authn_statement[0].authn_context.authn_context_class_ref.text == "urn:chave:loa:3"
    assert assertion.conditions.one_time_use
    assert assertion.conditions.audience_restriction[0].audience[0].text == portal.entity_id
    confirmation = assertion.subject.subject_confirmation[0].subject_confirmation_data
    assert confirmation.recipient == portal.acs and confirmation.in_response_to == request_id


def attribute_statuses(result) -> dict[str, str]:
    """Each attribute's fa:AttributeStatus, read from the XML the SP library verified."""
    from lxml import etree

    root = etree.fromstring(result.xmlstr if isinstance(result.xmlstr, bytes) else result.xmlstr.encode())
    return {a.get("Name"): a.get(f"{{{FA_NS}}}AttributeStatus")
            for a in root.iter("{urn:oasis:names:tc:SAML:2.0:assertion}Attribute")}


def test_sso_a_second_request_is_answered_without_signing_in(client, make_citizen, outbox, portal):
    make_citizen()
    extensions = fa_extensions({"NIC": True}, level=3)
    _, response = start(client, portal, extensions=extensions)
    follow(client, response)
    follow(client, sign_in(client, outbox))
    follow(client, client.post("/saml/consent", {"decision": "allow"}))
    request_id, response = start(client, portal, binding="redirect", extensions=extensions)
    _, result = answer(portal, follow(client, response), request_id)
    assert result.ava[PREFIX + "NIC"]


def test_the_requests_one_use_address_decides_at_once_and_a_reload_answers_nothing_twice(client, make_citizen,
                                                                                          outbox, portal):
    make_citizen()
    extensions = fa_extensions({"NIC": True}, level=3)
    _, response = start(client, portal, extensions=extensions)
    carried = response["Location"]
    assert carried.startswith("/saml/continue/")
    response = client.get(carried)  # one redirect to the login, not via another address first
    assert response.status_code == 302 and response["Location"].endswith("/login/")
    follow(client, sign_in(client, outbox))
    follow(client, client.post("/saml/consent", {"decision": "allow"}))

    # Signed in: the next request's address is the answer itself; reloaded, an error page, no second answer.
    request_id, response = start(client, portal, extensions=extensions)
    carried = response["Location"]
    _, result = answer(portal, client.get(carried), request_id)
    assert result.ava[PREFIX + "NIC"]
    again = client.get(carried)
    assert again.status_code == 400 and "SAMLResponse" not in again.content.decode()
    assert client.get("/saml/continue").status_code == 400  # nothing in progress either


def test_force_authn_signs_in_again(client, make_citizen, outbox, portal):
    make_citizen()
    extensions = fa_extensions({"NIC": True}, level=3)
    follow(client, start(client, portal, extensions=extensions)[1])
    follow(client, sign_in(client, outbox))
    follow(client, client.post("/saml/consent", {"decision": "allow"}))
    request_id, response = start(client, portal, extensions=extensions, force_authn="true")
    response = follow(client, response)
    assert response["Location"].endswith("/login/")
    _, result = answer(portal, follow(client, sign_in(client, outbox)), request_id)
    assert result.ava[PREFIX + "NIC"]


def test_is_passive_without_a_session_answers_no_passive(client, make_citizen, portal):
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3), is_passive="true")
    page = follow(client, response).content.decode()
    with pytest.raises(Exception) as failure:
        portal.read_response(form_fields(page)["SAMLResponse"], request_id)
    assert "NoPassive" in repr(failure.value) or "NoPassive" in str(failure.value.args)


def test_refused_consent_answers_request_denied(client, make_citizen, outbox, portal):
    make_citizen()
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    follow(client, response)
    follow(client, sign_in(client, outbox))
    page = follow(client, client.post("/saml/consent", {"decision": "refuse"})).content.decode()
    with pytest.raises(Exception) as failure:
        portal.read_response(form_fields(page)["SAMLResponse"], request_id)
    assert "RequestDenied" in repr(failure.value) or "RequestDenied" in str(failure.value.args)


def test_transient_name_id_on_request(client, make_citizen, outbox, portal):
    make_citizen()
    extensions = fa_extensions({"NIC": True}, level=3)
    request_id, response = start(client, portal, extensions=extensions, name_id_format=NAMEID_FORMAT_TRANSIENT)
    follow(client, response)
    follow(client, sign_in(client, outbox))
    _, result = answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)
    assert result.name_id.format == NAMEID_FORMAT_TRANSIENT


def test_sha1_signed_requests_of_old_portals_are_accepted(client, make_citizen, outbox, portal):
    make_citizen()
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3),
                                 sign_alg=SIG_RSA_SHA1, digest_alg=DIGEST_SHA1)
    assert follow(client, response)["Location"].endswith("/login/")


def test_auth_tab_presentation_policies_arrange_the_login_page(client, portal):
    _, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3, hide=["CC", "UPP"],
                                                                 default_tab="QRCODE"))
    assert follow(client, response)["Location"].endswith("/login/")
    page = client.get("/login/").content.decode()
    assert 'id="login-card"' not in page  # CC hidden
    assert page.index('id="login-app"') < page.index('id="login-pin"')  # QRCODE selected first
    _, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3, hide=["QRCODE"]))
    follow(client, response)
    page = client.get("/login/").content.decode()
    assert 'id="login-app"' not in page and page.index('id="login-pin"') < page.index('id="login-card"')


def test_is_passive_with_a_session_answers_at_once(client, make_citizen, outbox, portal):
    make_citizen()
    extensions = fa_extensions({"NIC": True}, level=3)
    _, response = start(client, portal, extensions=extensions)
    follow(client, response)
    follow(client, sign_in(client, outbox))
    follow(client, client.post("/saml/consent", {"decision": "allow"}))
    request_id, response = start(client, portal, extensions=extensions, is_passive="true")
    _, result = answer(portal, follow(client, response), request_id)
    assert result.ava[PREFIX + "NIC"]


def test_the_acs_may_be_named_by_its_index(client, portal):
    request_id, xml = portal.client.create_authn_request(
        "http://127.0.0.1:8000/saml/sso", binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", sign=True,
        assertion_consumer_service_index="1")
    import base64

    response = client.post("/saml/sso", {"SAMLRequest": base64.b64encode(str(xml).encode()).decode()})
    assert response.status_code == 302 and response["Location"].startswith("/saml/continue/")
    request_id, xml = portal.client.create_authn_request(
        "http://127.0.0.1:8000/saml/sso", binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST", sign=True,
        assertion_consumer_service_index="7")
    response = client.post("/saml/sso", {"SAMLRequest": base64.b64encode(str(xml).encode()).decode()})
    assert response.status_code == 400
