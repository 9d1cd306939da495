"""The consent page as the citizen sees it, and what the portal then receives."""

import re

import pytest
from django.test import Client

from chave.federation.attributes import PREFIX
from chave.federation.models import Consent
from chave.login.tests.pages import says, speak
from chave.oidc.claims import ATTRIBUTE_STATUS_CLAIM
from chave.testing.accessibility import Outline

from .portal import query_of, register_portal
from .signin import (
    EMAIL,
    PHONE,
    claims_of,
    consent_choices,
    make_foreigner,
    redeem,
    renew,
    sign_in,
    tokens,
    userinfo,
    visit,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def citizen(make_citizen):
    return make_citizen(phone=PHONE, email=EMAIL)


def to_consent(client, outbox, portal, **params):
    """Sign in for the portal's request and stop at the consent page; returns its HTML."""
    response = client.get(renew(portal).authorize_url(**params))
    if response["Location"].endswith("/login/"):
        response = sign_in(client, outbox, channel="sms")
        response = client.get(response["Location"])
    assert response["Location"].endswith("/oidc/consent"), response["Location"]
    page = client.get("/oidc/consent")
    assert page.status_code == 200
    return page.content.decode()


def checkbox(page, name):
    found = re.search(rf'<input type="checkbox" id="attr-{name}"[^>]*>', page)
    assert found, f"no checkbox for {name}"
    return found.group(0)


def label(page, name):
    found = re.search(rf'<label for="attr-{name}">(.*?)</label>', page, re.S)
    assert found, f"no label for {name}"
    return " ".join(re.sub(r"<[^>]+>", " ", found.group(1)).split())


def test_the_first_login_shows_the_portal_and_each_attribute_with_its_value(client, outbox, citizen):
    speak(client, "en")
    portal = register_portal(name="Portal da Saúde", mandatory=["NomeCompleto", "NIC"])
    page = to_consent(client, outbox, portal, scope="openid profile pt:identity email")
    assert "Portal da Saúde" in page
    assert "Maria Teste Silva" in label(page, "NomeCompleto")
    assert citizen.citizen.doc_number in label(page, "NIC")
    assert "17 May 1980" in label(page, "DataNascimento")
    assert EMAIL in label(page, "CorreioElectronico")
    # Mandatory ones are marked and cannot be unticked; the others can.
    for name in ("NomeCompleto", "NIC"):
        assert "disabled" in checkbox(page, name) and "checked" in checkbox(page, name)
        assert says("required") in label(page, name)
    for name in ("NomeProprio", "NomeApelido", "DataNascimento", "CorreioElectronico"):
        assert "disabled" not in checkbox(page, name) and 'name="attribute"' in checkbox(page, name)
        assert says("required") not in label(page, name)
    # A Portuguese citizen is not asked for a foreign document.
    assert 'id="attr-DocNumber"' not in page


@pytest.mark.parametrize("lang, born, valid_until, phone, signing", [
    ("en", "17 May 1980", "March 2031", "+351 912 345 678", "no"),
    ("pt-pt", "17 de maio de 1980", "de março de 2031", "+351 912 345 678", "não"),
])
def test_values_are_shown_as_people_read_them_and_released_as_they_are(client, outbox, citizen, lang, born,
                                                                       valid_until, phone, signing):
    """Dates in words, the mobile number grouped, yes or no: no ISO date, no E.164 string, no
    True/False on the page; the portal still gets the values in their standard form."""
    from chave.identity.models import Key

    Key.objects.filter(pk=citizen.pk).update(valid_until="2031-03-20")
    speak(client, lang)
    portal = register_portal(attributes=["NomeCompleto", "DataNascimento", "NumeroTelemovel", "DataValidade",
                                         "TemAssinaturaDigitalCMD"], mandatory=["NomeCompleto"])
    page = to_consent(client, outbox, portal, scope="openid profile phone pt:validity pt:signing")
    assert born in label(page, "DataNascimento")
    assert valid_until in label(page, "DataValidade")
    assert phone in label(page, "NumeroTelemovel")
    assert label(page, "TemAssinaturaDigitalCMD").endswith(f": {signing}")
    assert not re.search(r"\d{4}-\d{2}-\d{2}", page), "an ISO date on the consent page"
    assert PHONE not in page and "True" not in page and "False" not in page
    body = tokens(client, outbox, portal, channel="sms", scope="openid profile phone pt:validity pt:signing")
    info = userinfo(client, body["access_token"]).json()
    assert info["birthdate"] == "1980-05-17" and info["phone_number"] == PHONE


@pytest.mark.parametrize("lang, document, country", [
    ("en", "Passport", "Brazil"), ("pt-pt", "Passaporte", "Brasil"),
])
def test_a_foreign_document_is_shown_by_its_type_and_country_names(client, outbox, db, lang, document, country):
    make_foreigner(phone="+351913333333")
    speak(client, lang)
    portal = register_portal(attributes=["NomeCompleto", "DocType", "DocNationality", "DocNumber"],
                             mandatory=["NomeCompleto"])
    response = client.get(renew(portal).authorize_url(scope="openid pt:identity profile"))
    response = client.get(sign_in(client, outbox, identifier="+351913333333", channel="sms")["Location"])
    assert response["Location"].endswith("/oidc/consent"), response["Location"]
    page = client.get("/oidc/consent").content.decode()
    assert label(page, "DocType").endswith(f": {document}")
    assert label(page, "DocNationality").endswith(f": {country}")
    assert label(page, "DocNumber").endswith(": FB123456")


def test_refused_optional_attributes_are_absent_and_reported_withheld(client, outbox, citizen):
    portal = register_portal()
    trip = visit(client, outbox, portal, channel="sms", scope="openid profile email", share=["NomeProprio"])
    tokens_ = redeem(client, portal, trip.code).json()
    info = userinfo(client, tokens_["access_token"]).json()
    assert info["name"] == "Maria Teste Silva"  # mandatory
    assert info["given_name"] == "Maria"
    for claim in ("birthdate", "family_name", "email"):
        assert claim not in info
    status = info[ATTRIBUTE_STATUS_CLAIM]
    assert status["NomeCompleto"] == status["NomeProprio"] == "available"
    assert status["DataNascimento"] == status["NomeApelido"] == status["CorreioElectronico"] == "withheld"


def test_a_mandatory_attribute_cannot_be_refused_by_leaving_it_out(client, outbox, citizen):
    portal = register_portal()
    to_consent(client, outbox, portal, scope="openid profile")
    response = client.post("/oidc/consent", {"decision": "allow"})  # nothing ticked at all
    response = client.get(response["Location"])
    code = query_of(response["Location"])["code"]
    info = userinfo(client, redeem(client, portal, code).json()["access_token"]).json()
    assert info["name"] == "Maria Teste Silva"
    assert "given_name" not in info


def test_consent_is_remembered_per_portal(client, outbox, citizen):
    first = register_portal(name="Primeiro")
    second = register_portal(name="Segundo")
    assert visit(client, outbox, first, channel="sms").pages == ["login", "consent"]
    assert visit(client, outbox, first).pages == []
    assert visit(client, outbox, second).pages == ["consent"]  # another portal asks again


def test_asking_for_more_shows_only_the_new_attributes(client, outbox, citizen):
    portal = register_portal()
    visit(client, outbox, portal, channel="sms", scope="openid profile", share=[])
    page = to_consent(client, outbox, portal, scope="openid profile email pt:nif")
    asked = re.findall(r'id="attr-(\w+)"', page)
    assert asked == ["CorreioElectronico", "NIF"]  # profile was answered, refusals included
    assert says("not available", "pt-pt") in label(page, "NIF")  # the citizen has no NIF on record
    client.post("/oidc/consent", {"decision": "allow", "attribute": ["CorreioElectronico"]})
    trip = visit(client, outbox, portal, scope="openid profile email pt:nif")
    assert trip.pages == []


def test_prompt_consent_asks_again_for_everything_once(client, outbox, citizen):
    portal = register_portal()
    visit(client, outbox, portal, channel="sms", scope="openid profile")
    trip = visit(client, outbox, portal, scope="openid profile", prompt="consent", share=["NomeProprio"])
    assert trip.pages == ["consent"] and trip.code  # answered once, then the code (no loop)
    info = userinfo(client, redeem(client, portal, trip.code).json()["access_token"]).json()
    assert info["given_name"] == "Maria" and "birthdate" not in info


def test_do_not_sign_in_sends_access_denied_with_state(client, outbox, citizen):
    portal = register_portal()
    to_consent(client, outbox, portal)
    response = client.post("/oidc/consent", {"decision": "refuse"})
    assert response.status_code == 302 and response["Location"].startswith(portal.redirect_uri)
    params = query_of(response["Location"])
    assert params["error"] == "access_denied" and params["state"] == portal.state and "code" not in params
    assert params["iss"]
    assert not Consent.objects.exists()  # nothing remembered: next time the citizen is asked again
    assert client.get("/oidc/consent").status_code == 400  # and the request is over


def test_the_consent_page_without_a_request_is_a_400_page(client, outbox, citizen):
    speak(client, "en")
    response = client.get("/oidc/consent")
    assert response.status_code == 400
    assert says("There is no sign-in in progress.") in response.content.decode()
    sign_in(client, outbox, channel="sms")
    assert client.get("/oidc/consent").status_code == 400
    assert client.post("/oidc/consent", {"decision": "allow"}).status_code == 400


def test_an_unknown_decision_changes_nothing(client, outbox, citizen):
    portal = register_portal()
    to_consent(client, outbox, portal)
    assert client.post("/oidc/consent", {"decision": "maybe"}).status_code == 400
    assert client.post("/oidc/consent", {}).status_code == 400
    assert not Consent.objects.exists()


def test_consent_cannot_be_posted_without_the_csrf_token(client, outbox, citizen):
    portal = register_portal()
    to_consent(client, outbox, portal)
    browser = Client(enforce_csrf_checks=True)  # the same browser, now checking CSRF as a real one
    browser.cookies = client.cookies
    page = browser.get("/oidc/consent").content.decode()
    assert browser.post("/oidc/consent", {"decision": "allow"}).status_code == 403
    assert not Consent.objects.exists()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    response = browser.post("/oidc/consent", {"decision": "allow", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and Consent.objects.exists()


def test_consent_for_a_portal_suspended_meanwhile_is_refused(client, outbox, citizen):
    from chave.federation import services as federation
    from chave.federation.models import RelyingParty

    portal = register_portal()
    to_consent(client, outbox, portal)
    federation.decide(RelyingParty.objects.get(client_id=portal.client_id), "suspend", by="test")
    assert client.post("/oidc/consent", {"decision": "allow"}).status_code == 400
    assert not Consent.objects.exists()


@pytest.mark.parametrize("lang", ["en", "pt-pt"])
def test_the_consent_page_is_accessible_and_needs_no_javascript(client, outbox, citizen, lang):
    speak(client, lang)
    portal = register_portal(mandatory=["NomeCompleto"])
    page = to_consent(client, outbox, portal, scope="openid profile email")
    outline = Outline()
    outline.feed(page)
    outline.close()
    assert [level for level, _ in outline.headings].count(1) == 1
    assert outline.landmarks.count("main") == 1
    assert outline.html_lang == {"en": "en", "pt-pt": "pt-PT"}[lang]
    assert len(outline.fields) == 5
    for field in outline.fields:
        assert field.get("id") in outline.labels_for, field
    assert all(outline.buttons) and len({i for i in outline.ids if outline.ids.count(i) > 1}) == 0
    assert "<script" not in page
    # A plain form post: the two buttons are the decision.
    assert re.search(r'<form method="post"', page)
    assert 'name="decision" value="allow"' in page and 'name="decision" value="refuse"' in page
    assert consent_choices(page) == ["NomeProprio", "NomeApelido", "DataNascimento", "CorreioElectronico"]


def test_the_ids_and_values_shown_are_those_released(client, outbox, citizen):
    """What the citizen agreed to on the page is exactly what the portal gets."""
    portal = register_portal()
    body = tokens(client, outbox, portal, channel="sms", scope="openid profile pt:identity",
                  claims='{"id_token": {"http://interop.gov.pt/MDC/Cidadao/NIC": null}}')
    assert body["claims"][PREFIX + "NIC"] == citizen.citizen.doc_number
    assert claims_of(client, body["id_token"])["sub"] == userinfo(client, body["access_token"]).json()["sub"]
