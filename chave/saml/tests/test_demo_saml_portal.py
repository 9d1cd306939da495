"""The SAML demo portal (``examples/demo_portal/saml_app.py``): its registration by ``chave
seed_demo`` from its metadata, ``chave demo_saml_portal``'s refusals, and the portal against Chave
served for real (``live_server``) with a citizen's browser (``requests``): a login whose ticket
another browser cannot use, and bad input answered with a page, never a 500."""

from __future__ import annotations

import contextlib
import io
import re
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import translation

from chave.federation import services as federation
from chave.federation.models import RelyingParty
from chave.oidc.management.commands.demo_portal import portal_module
from chave.oidc.tests.test_demo_portal import BOUND, PHONE, PIN, Browser, serving, text
from chave.public.management.commands.seed_demo import DEMO_SAML_PORTAL_NAME, seed_demo_saml_portal
from chave.saml import idp

from .sp import form_action, form_fields

pytestmark = pytest.mark.django_db(transaction=True)
URL = "http://127.0.0.1:8002"
saml_app = portal_module("saml_app")


@contextlib.contextmanager
def running_saml_portal(issuer: str, data_dir):
    """The SAML demo portal on a free port of 127.0.0.1, registered from its metadata and approved
    as ``seed_demo`` does it, pointed at Chave at ``issuer``: yields ``(url, app)``; stopped on exit."""
    def make_app(url):
        seed_demo_saml_portal(url, data_dir)
        return saml_app.DemoSamlPortal(saml_app.SamlConfig(issuer=issuer, base_url=url, data_dir=data_dir,
                                                           timeout=BOUND))

    with serving(make_app) as running:
        yield running


# --- the registration ----------------------------------------------------------------------------


def test_seed_demo_registers_the_saml_portal_from_its_metadata_and_again_for_a_new_certificate(tmp_path):
    translation.activate("en")
    sp, notes = seed_demo_saml_portal(URL, tmp_path)
    assert notes == ["Registered the SAML demo portal as a service provider, approved."]
    party = sp.relying_party
    assert party.name == DEMO_SAML_PORTAL_NAME and party.state == RelyingParty.State.APPROVED
    assert sp.entity_id == URL + "/saml/metadata"
    assert sp.acs_urls == [URL + "/saml/acs"] and [e["url"] for e in sp.slo] == [URL + "/saml/slo"]
    certificate = (tmp_path / saml_app.saml.SpKey.CERT_NAME).read_text()
    assert sp.certificates == [certificate]
    assert party.mandatory_attributes == ["NomeCompleto"] and party.min_level == 2

    again, notes = seed_demo_saml_portal(URL, tmp_path)
    assert notes == [] and again.pk == sp.pk

    for name in (saml_app.saml.SpKey.KEY_NAME, saml_app.saml.SpKey.CERT_NAME):
        (tmp_path / name).unlink()  # the portal makes a new key
    federation.decide(party, "suspend", by="test", reason="test")
    renewed, notes = seed_demo_saml_portal(URL, tmp_path)
    assert notes == ["The SAML demo portal has a new certificate: its metadata is registered again.",
                     "The SAML demo portal was suspended: it is approved again."]
    assert renewed.pk == sp.pk and renewed.certificates != sp.certificates
    assert renewed.relying_party.state == RelyingParty.State.APPROVED


@pytest.mark.parametrize("state", ["none", "suspended", "new certificate"])
def test_demo_saml_portal_refuses_to_start_without_a_current_approved_registration(settings, tmp_path, state):
    settings.DATA_DIR = tmp_path
    settings.CHAVE_ENV = "dev"
    expected = r"not registered for http://127.0.0.1:8002: run `chave seed_demo --demo-saml-portal-url"
    if state != "none":
        sp, _notes = seed_demo_saml_portal(URL)
        if state == "suspended":
            federation.decide(sp.relying_party, "suspend", by="test", reason="test")
            expected = r"registration is suspended: run `chave seed_demo --demo-saml-portal-url"
        else:
            (tmp_path / "demo_saml_portal" / saml_app.saml.SpKey.KEY_NAME).unlink()
            expected = r"has a new certificate: run `chave seed_demo --demo-saml-portal-url"
    with translation.override("en"), pytest.raises(CommandError, match=expected):
        call_command("demo_saml_portal", stdout=io.StringIO())


# --- the portal against Chave ------------------------------------------------------------------------


@pytest.fixture
def portal(live_server, settings, tmp_path):
    settings.CHAVE_PUBLIC_URL = live_server.url
    with running_saml_portal(live_server.url, tmp_path) as (url, app):
        yield url


def to_the_acs(browser: Browser, portal: str, outbox, *, level: int = 3, decision: str = "allow"):
    """From the portal's button through Chave (PIN, code, consent) to Chave's page whose button
    posts the signed Response to the portal's ACS: (the ACS address, the fields)."""
    page = browser.post(portal + "/login", {"level": str(level)})
    assert urlsplit(page.url).path == "/login/", text(page)[:1000]
    page = browser.submit(page, {"identifier": PHONE, "pin": PIN})
    page = browser.submit(page, {"code": outbox.last_code(PHONE)})
    assert urlsplit(page.url).path == "/saml/consent", text(page)[:1000]
    page = browser.submit(page, {"decision": decision})
    return form_action(page.text), form_fields(page.text)


def test_a_login_ticket_serves_only_the_browser_that_started_the_login(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    citizen, other = Browser("en"), Browser("en")
    acs, fields = to_the_acs(citizen, portal, outbox)
    assert acs == portal + "/saml/acs" and set(fields) == {"SAMLResponse"}
    # The ACS needs no cookie (a cross-site POST carries none): it checks and hands out a ticket.
    checked = other.post(acs, fields, allow_redirects=False)
    assert checked.status_code == 303 and checked.headers["Location"].startswith("/saml/finish?ticket=")
    finish = portal + checked.headers["Location"]
    refused = other.get(finish)
    assert refused.status_code == 400 and "This login was not started here" in text(refused)
    replayed = other.post(acs, fields, allow_redirects=False)
    assert replayed.status_code == 400  # its request is answered once
    signed_in = citizen.get(finish)
    assert signed_in.url == portal + "/"
    assert "Signed in to the SAML Demo Portal" in text(signed_in) and "Maria Teste Silva" in text(signed_in)
    assert "level 3 (urn:chave:loa:3)" in text(signed_in)
    assert citizen.get(finish).status_code == 400  # once


def test_refused_consent_comes_back_as_request_denied_and_signs_nobody_in(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    citizen = Browser("pt-PT")
    acs, fields = to_the_acs(citizen, portal, outbox, decision="refuse")
    page = citizen.post(acs, fields)
    assert page.status_code == 200 and page.url == acs
    assert "Escolheu não entrar no Portal SAML de Demonstração com a Chave." in text(page)
    home = citizen.get(portal + "/")
    assert "Entrar com a Chave" in home.text and "Terminar sessão" not in home.text


@pytest.mark.parametrize(("method", "path", "data", "status"), [
    ("post", "/login", {"level": "9"}, 400),
    ("post", "/login", {"level": "x"}, 400),
    ("post", "/saml/acs", {}, 400),
    ("post", "/saml/acs", {"SAMLResponse": "not base64!"}, 400),
    ("post", "/saml/acs", {"SAMLResponse": "PHNhbWxwOlJlc3BvbnNlLz4="}, 400),
    ("get", "/saml/finish?ticket=made-up", None, 400),
    ("get", "/saml/slo?SAMLRequest=bm90IGRlZmxhdGVk&SigAlg=x&Signature=y", None, 400),
    ("get", "/saml/slo?SAMLResponse=bm90IGRlZmxhdGVk", None, 400),
    ("post", "/logout", {"csrf": "guess"}, 400),
    ("get", "/nowhere", None, 404),
    ("put", "/saml/acs", None, 405),
])
def test_bad_input_gets_a_page_never_a_server_error(portal, method, path, data, status):
    answer = getattr(Browser("en").http, method)(portal + path, data=data, timeout=BOUND, allow_redirects=False)
    assert answer.status_code == status
    assert answer.headers["Content-Type"].startswith("text/html")
    assert "<h1>" in answer.text and "Traceback" not in answer.text


def test_its_metadata_is_what_chave_registered(portal):
    from chave.saml.models import ServiceProvider

    published = Browser("en").get(portal + "/saml/metadata")
    assert published.headers["Content-Type"] == "application/samlmetadata+xml"
    sp = ServiceProvider.objects.get(entity_id=portal + "/saml/metadata")
    assert re.sub(r"\s", "", sp.certificates[0]).split("-----")[2] in re.sub(r"\s", "", published.text)
    assert idp.FA_NS not in published.text  # the extensions are in its requests, not its metadata
