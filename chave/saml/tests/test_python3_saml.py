"""A portal built from the autenticacao.gov manual: its AuthnRequest written as the manual's
example (Consent, ProviderName, the fa: extensions with isRequired="True", FAAALevel), signed
with SHA-1 as the old sample does, by python3-saml's xmlsec bindings; the answer validated by
python3-saml (OneLogin's toolkit) in strict mode."""

import base64
import uuid

import pytest
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.utils import OneLogin_Saml2_Utils

from chave.federation.attributes import PREFIX
from chave.oidc.tests.signin import sign_in
from chave.saml import idp

from .conftest import register
from .sp import ACS, HOST, form_action, form_fields, manual_request, onelogin_settings

pytestmark = pytest.mark.django_db(transaction=True)

def test_a_portal_from_the_manual_signs_in_and_python3_saml_accepts_the_answer(client, tmp_path, make_citizen,
                                                                              outbox, idp_metadata):
    key = make_citizen()
    settings, sp_key, sp_cert = onelogin_settings(tmp_path, idp_metadata)
    register(settings.get_sp_metadata().decode(), name="Portal de Serviços (teste)", attributes=["NIC", "NomeProprio"])
    request_id = "_" + uuid.uuid4().hex
    signed = OneLogin_Saml2_Utils.add_sign(manual_request(request_id), sp_key, sp_cert,
                                           sign_algorithm=C.RSA_SHA1, digest_algorithm=C.SHA1)
    response = client.post("/saml/sso", {"SAMLRequest": base64.b64encode(signed).decode(),
                                         "RelayState": base64.b64encode(b"/pedido/42").decode()})
    assert response.status_code == 302, response.content[:1000]
    response = client.get(response["Location"])  # the request, carried to Chave: to the login
    assert response["Location"].endswith("/login/")
    response = client.get(sign_in(client, outbox)["Location"])
    assert response["Location"] == "/saml/consent"
    page = client.get("/saml/consent").content.decode()
    assert 'value="NomeProprio"' in page and 'value="NIC"' not in page  # NIC required, the given name optional
    response = client.get(client.post("/saml/consent", {"decision": "allow", "attribute": ["NomeProprio"]})["Location"])
    page = response.content.decode()
    assert form_action(page) == ACS
    fields = form_fields(page)
    assert base64.b64decode(fields["RelayState"]) == b"/pedido/42"

    answer = OneLogin_Saml2_Response(settings, fields["SAMLResponse"])
    request_data = {"https": "on", "http_host": HOST, "script_name": "/sp/acs", "server_port": "443"}
    assert answer.is_valid(request_data, request_id, raise_exceptions=True)
    attributes = answer.get_attributes()
    assert attributes[PREFIX + "NIC"] == [key.citizen.doc_number]
    assert attributes[PREFIX + "NomeProprio"] == ["Maria"]
    assert attributes[PREFIX + "NIF"] == []  # asked for, but not an attribute this portal may have
    xml = answer.get_xml_document()
    statuses = {a.get("Name"): a.get(f"{{{idp.FA_NS}}}AttributeStatus")
                for a in xml.iter("{urn:oasis:names:tc:SAML:2.0:assertion}Attribute")}
    assert statuses == {PREFIX + "NIC": "Available", PREFIX + "NomeProprio": "Available",
                        PREFIX + "NIF": "NotAvailable"}
    assert answer.get_nameid_format() == C.NAMEID_PERSISTENT
    assert answer.get_authn_contexts() == ["urn:chave:loa:3"]
