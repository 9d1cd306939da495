""""Cancel and go back to the portal" for a SAML request: a signed Response whose status is the
autenticacao.gov manual's for a sign-in that was not done (Responder / AuthnFailed), verified by
the pysaml2 portal."""

import base64
import re

import pytest
from django.test import Client
from lxml import etree
from saml2.response import StatusAuthnFailed
from saml2.sigver import SignatureError

from chave.audit.models import AuditEvent
from chave.login.tests.pages import says, speak
from chave.oidc.tests.signin import PHONE, PIN

from .sp import fa_extensions, form_action, form_fields
from .test_sso import follow, start

pytestmark = pytest.mark.django_db(transaction=True)
SAMLP = "urn:oasis:names:tc:SAML:2.0:protocol"


def statuses(saml_response: str) -> list[str]:
    root = etree.fromstring(base64.b64decode(saml_response))
    return [code.get("Value") for code in root.iter(f"{{{SAMLP}}}StatusCode")]


def test_cancel_on_the_login_page_answers_a_signed_authn_failed(make_citizen, portal):
    key = make_citizen()
    browser = Client(enforce_csrf_checks=True)
    speak(browser, "pt-pt")
    request_id, response = start(browser, portal, extensions=fa_extensions({"NIC": True}, level=3),
                                 relay_state="volta=/inicio")
    assert follow(browser, response)["Location"].endswith("/login/")
    page = browser.get("/login/").content.decode()
    assert 'action="/saml/cancel" class="cancel-to-portal"' in page
    assert "Cancelar e voltar ao serviço Portal do Cidadão (teste)" in page
    assert browser.post("/saml/cancel").status_code == 403  # CSRF: the form's token is needed

    # After the PIN, on the code page: the login ends with the cancel.
    response = browser.post("/login/", {"identifier": PHONE, "pin": PIN,
                                        "csrfmiddlewaretoken": token_of(page)})
    page = browser.get(response["Location"], follow=True).content.decode()
    assert 'action="/saml/cancel"' in page
    answered = browser.post("/saml/cancel", {"csrfmiddlewaretoken": token_of(page), "request": reference(page)})
    assert answered.status_code == 200
    page = answered.content.decode()
    assert form_action(page) == portal.acs
    fields = form_fields(page)
    assert fields["RelayState"] == "volta=/inicio"
    assert statuses(fields["SAMLResponse"]) == ["urn:oasis:names:tc:SAML:2.0:status:Responder",
                                               "urn:oasis:names:tc:SAML:2.0:status:AuthnFailed"]
    with pytest.raises(StatusAuthnFailed):  # signature, destination and InResponseTo held: then the status
        portal.read_response(fields["SAMLResponse"], request_id)
    # The same answer with its message changed fails on Chave's signature, not on its status.
    tampered = base64.b64decode(fields["SAMLResponse"]).replace(b"cancelled the sign-in", b"signed in, all fine!")
    with pytest.raises(SignatureError):
        portal.read_response(base64.b64encode(tampered).decode(), request_id)
    event = AuditEvent.objects.get(event="saml.authn")
    assert (event.outcome, event.citizen_id) == ("abandoned", key.citizen_id)
    assert event.detail["client_id"] == portal.registration.relying_party.client_id
    # The login cannot go on, and the request is over.
    assert browser.get("/login/code/")["Location"].endswith("/login/")
    assert "cancel-to-portal" not in browser.get("/login/").content.decode()


def reference(page: str) -> str:
    return re.search(r'<input type="hidden" name="request" value="([0-9a-f]+)">', page).group(1)


def token_of(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_a_cancel_after_the_request_is_gone_is_a_clear_page(client, portal, lang):
    speak(client, lang)
    _request_id, response = start(client, portal, extensions=fa_extensions({"NIC": True}, level=3))
    follow(client, response)
    named = {"request": reference(client.get("/login/").content.decode())}
    assert client.post("/saml/cancel", named).status_code == 200  # answered once
    again = client.post("/saml/cancel", named)
    assert again.status_code == 400
    assert says("This sign-in has already ended", lang) in again.content.decode()
    assert client.get("/saml/cancel").status_code == 405
