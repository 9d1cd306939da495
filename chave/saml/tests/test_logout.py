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


def test_the_sessions_other_saml_sp_is_sent_a_signed_logout_request(client, make_citizen, outbox, portal, tmp_path,
                                                                    idp_metadata):
    import html
    import re

    from .conftest import register
    from .sp import pysaml2_portal

    make_citizen()
    other = pysaml2_portal(tmp_path, idp_metadata, host="outro.example.pt", name="outro")
    register(other.metadata_xml, name="Outro portal")
    extensions = fa_extensions({"NIC": True}, level=3)
    request_id, response = start(client, portal, extensions=extensions)
    follow(client, response)
    follow(client, sign_in(client, outbox))
    _, result = answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)
    other_id, response = start(client, other, extensions=extensions)
    response = follow(client, response)
    if response.status_code == 302:
        response = follow(client, client.post("/saml/consent", {"decision": "allow"}))
    answer(other, response, other_id)

    _, query = logout_query(portal, result.name_id)
    page = client.get("/saml/slo", query)
    assert page.status_code == 200  # the signed-out page: the other SP's frame, then the way back
    text = page.content.decode()
    frames = [html.unescape(u) for u in re.findall(r'<iframe class="frontchannel" src="([^"]+)"', text)]
    assert len(frames) == 1 and frames[0].startswith("https://outro.example.pt/saml/slo?")
    # The SP answers in its frame, sending its LogoutResponse back to Chave: Chave's own pages may load there.
    assert page["Content-Security-Policy"].endswith("; frame-src 'self' https://outro.example.pt")
    sent = {k: v[0] for k, v in parse_qs(urlsplit(frames[0]).query).items()}
    request = other.client.parse_logout_request(sent["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                                sigalg=sent["SigAlg"], signature=sent["Signature"])
    assert request.message.issuer.text == idp.entity_id()
    from saml2.sigver import RSACrypto, verify_redirect_signature

    from chave.saml import keys

    assert verify_redirect_signature(sent, RSACrypto(None), keys.certificate_base64(keys.active_key()))
    sent["SAMLRequest"] = sent["SAMLRequest"][:-8] + "AAAAAAA="
    assert not verify_redirect_signature(sent, RSACrypto(None), keys.certificate_base64(keys.active_key()))
    back = html.unescape(re.search(r'<a href="([^"]+)" id="continue">', text).group(1))
    assert back.startswith("https://portal.example.pt/saml/slo?SAMLResponse=")


def test_chaves_own_sign_out_sends_the_saml_sp_a_signed_logout_request(client, make_citizen, outbox, portal):
    """Signing out of Chave (the menu's "Sign out") reaches the session's SAML service providers as
    an SP-initiated logout does: a signed LogoutRequest loaded in a frame of the signed-out page."""
    import html
    import re

    from saml2.sigver import RSACrypto, verify_redirect_signature

    from chave.saml import keys

    make_citizen()
    request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    follow(client, response)
    follow(client, sign_in(client, outbox))
    _, result = answer(portal, follow(client, client.post("/saml/consent", {"decision": "allow"})), request_id)

    page = client.post("/login/logout/", follow=True)
    assert page.status_code == 200
    frames = [html.unescape(u) for u in re.findall(r'<iframe class="frontchannel" src="([^"]+)"',
                                                     page.content.decode())]
    assert len(frames) == 1 and frames[0].startswith("https://portal.example.pt/saml/slo?")
    sent = {k: v[0] for k, v in parse_qs(urlsplit(frames[0]).query).items()}
    request = portal.client.parse_logout_request(sent["SAMLRequest"], BINDING_HTTP_REDIRECT,
                                                 sigalg=sent["SigAlg"], signature=sent["Signature"])
    assert request.message.name_id.text == result.name_id.text
    assert verify_redirect_signature(sent, RSACrypto(None), keys.certificate_base64(keys.active_key()))
    assert client.get("/area/").status_code == 302  # signed out of Chave too


def test_an_sps_logout_response_gets_a_page_only_chave_may_frame(client):
    """What an SP sends back in the frame of Chave's signed-out page: nothing to do, and a page
    that Chave's own signed-out page (and nobody else) may show in that frame."""
    response = client.get("/saml/slo", {"SAMLResponse": "answer"})
    assert response.status_code == 200
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert "frame-ancestors 'self'" in response["Content-Security-Policy"]
    assert "frame-ancestors 'none'" not in response["Content-Security-Policy"]
