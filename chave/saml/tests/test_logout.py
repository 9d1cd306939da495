"""SP-initiated single logout: a signed LogoutRequest ends Chave's session, reaches the session's
OpenID Connect portals (back-channel logout), and is answered with a signed LogoutResponse."""

from urllib.parse import parse_qs, urlsplit

import pytest
from saml2 import BINDING_HTTP_REDIRECT
from saml2.xmldsig import SIG_RSA_SHA256

from chave.oidc.models import BackchannelLogout
from chave.oidc.tests.portal import query_of, register_portal
from chave.oidc.tests.signin import sign_in
from chave.saml import idp

from .sp import fa_extensions
from .test_sso import answer, follow, start

pytestmark = pytest.mark.django_db(transaction=True)


def logout_query(portal, name_id, *, sign=True):
    request_id, request = portal.client.create_logout_request(idp.slo_url(), idp.entity_id(), name_id=name_id,
                                                              sign=False)
    info = portal.client.apply_binding(BINDING_HTTP_REDIRECT, str(request), idp.slo_url(), relay_state="fim",
                                       sign=sign, sigalg=SIG_RSA_SHA256)
    location = dict(info["headers"])["Location"]
    return request_id, {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def test_sp_initiated_logout_ends_the_session_and_reaches_the_oidc_portal(client, make_citizen, outbox, portal):
    make_citizen()
    oidc_portal = register_portal(mandatory=(), min_level=3, backchannel_logout_uri="https://portal.example.gov.pt/bcl")
    response = client.get(oidc_portal.authorize_url(scope="openid"))
    response = client.get(sign_in(client, outbox)["Location"])
    assert "code" in query_of(response["Location"])
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    follow(client, response)
    _, result = answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)

    logout_id, query = logout_query(portal, result.name_id)
    response = client.get("/saml/slo", query)
    assert response.status_code == 302 and response["Location"].startswith("https://portal.example.pt/saml/slo?")
    answer_query = query_of(response["Location"])
    assert answer_query["RelayState"] == "fim" and answer_query["SigAlg"] == SIG_RSA_SHA256
    verdict = portal.client.parse_logout_request_response(answer_query["SAMLResponse"], BINDING_HTTP_REDIRECT)
    assert verdict.response.in_response_to == logout_id
    assert verdict.response.status.status_code.value == "urn:oasis:names:tc:SAML:2.0:status:Success"
    # Chave's session is over (the next SAML request asks for a login), and the OIDC portal is told.
    _, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    assert follow(client, response)["Location"].endswith("/login/")
    assert BackchannelLogout.objects.filter(relying_party__client_id=oidc_portal.client_id).exists()


def test_an_unsigned_logout_request_changes_nothing(client, make_citizen, outbox, portal):
    make_citizen()
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    follow(client, response)
    follow(client, sign_in(client, outbox))
    _, result = answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)
    _, query = logout_query(portal, result.name_id, sign=False)
    response = client.get("/saml/slo", query)
    assert response.status_code == 400
    _, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    assert follow(client, response).status_code == 200  # still signed in: the answer at once
