"""The SAML demo portal (``examples/demo_portal/saml_app.py``, on pysaml2) and the OpenID Connect
demo portal against Chave, in a real browser (Debian's chromium, Playwright):

- level 2 (PIN + a code by e-mail) at the OIDC portal, then the SAML portal at level 2 without a
  second PIN (single sign-on), the consent page (an optional attribute refused: ``Withheld``),
  then the SAML portal's "Log out": a signed LogoutRequest ends Chave's session and the OIDC
  portal receives its back-channel logout token (its session ends);
- level 4 (the test Citizen Card through the real card agent and SoftHSM) at the SAML portal,
  then the OIDC portal without signing in again; then Chave's own "Sign out": its signed-out
  page loads Chave's signed LogoutRequest in a frame, the SAML portal checks it, ends its
  session and answers with a signed LogoutResponse in that frame (no page's policy blocks it).

Both portals run in this process on ports of their own, registered as ``chave seed_demo`` does
(the SAML one from its metadata); Chave is ``live_server``. The file lives beside the card tests
to share their session's test cards and card agent process. The portals' words are their own
(``text.say``), Chave's come from its catalogue (``says``).
"""

import os
import re

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.login.tests.pages import says  # noqa: E402
from chave.oidc.models import BackchannelLogout  # noqa: E402
from chave.oidc.tests.test_demo_portal import demo, portal_key_dir, running_portal  # noqa: E402
from chave.public.management.commands.seed_demo import DEMO_PORTAL_NAME, DEMO_SAML_PORTAL_NAME  # noqa: E402
from chave.saml.tests.test_demo_saml_portal import running_saml_portal  # noqa: E402
from chave.testing.browser import click_and_wait, expect, fits_the_screen  # noqa: E402

from .conftest import card_citizen  # noqa: E402
from .test_card_browser import through_the_agent  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE, EMAIL, PIN = "+351912345678", "maria@example.pt", "4719"
say = demo.text.say


@pytest.fixture
def portals(live_server, settings, tmp_path_factory):
    """(the OIDC demo portal, the SAML demo portal's address)."""
    settings.CHAVE_PUBLIC_URL = live_server.url
    with running_portal(live_server.url, portal_key_dir(tmp_path_factory)) as oidc_portal, \
            running_saml_portal(live_server.url, tmp_path_factory.getbasetemp() / "demo-saml-portal") as (url, _app):
        yield oidc_portal, url


def saml_login(page, url: str, *, level: int, lang: str):
    page.goto(url + "/")
    expect(page.get_by_role("heading", name=say(lang, "saml_portal"), level=1)).to_be_visible()
    page.get_by_label(say(lang, f"saml_level_{level}")).check()
    page.get_by_role("button", name=say(lang, "login")).click()


def share_and_continue(page, chave_lang: str, *, refuse: str | None = None):
    """Chave's consent page for the SAML portal, then its one button to the portal's ACS."""
    page.wait_for_url(re.compile(r"/saml/consent$"))
    if refuse:
        page.get_by_label(re.compile(re.escape(says(refuse, chave_lang)))).uncheck()
    page.get_by_role("button", name=says("Share and continue", chave_lang)).click()
    page.get_by_role("button", name=says("Continue to %(portal)s", chave_lang, portal=DEMO_SAML_PORTAL_NAME)).click()


def never_asked_to_sign_in(page) -> list[str]:
    """The addresses of Chave's login pages this page goes through from now on."""
    seen = []
    page.on("framenavigated", lambda frame: seen.append(frame.url) if "/login/" in frame.url else None)
    return seen


def test_oidc_then_saml_at_level_2_without_a_second_pin_then_saml_logout_reaches_the_oidc_portal(
        phone, portals, make_citizen, outbox, run_worker, live_server):
    oidc_portal, saml_url = portals
    make_citizen(phone=PHONE, email=EMAIL, pin=PIN)
    lang, chave_lang = "pt", "pt-pt"
    page = phone("pt-PT")

    # The OpenID Connect portal first, at level 2: PIN, then the code by e-mail.
    page.goto(oidc_portal.url + "/")
    page.get_by_role("button", name=say(lang, "login")).click()
    page.wait_for_url(re.compile(r"/login/$"))
    page.get_by_label(says("Mobile number or e-mail", chave_lang)).fill(EMAIL)
    page.get_by_label(says("PIN of the Digital Mobile Key", chave_lang)).fill(PIN)
    page.get_by_role("button", name=says("Continue", chave_lang)).click()
    page.wait_for_url(re.compile(r"/login/channel/$"))
    page.locator("input[name=channel][value=email]").check()
    page.get_by_role("button", name=says("Send the code", chave_lang)).click()
    page.wait_for_url(re.compile(r"/login/code/$"))
    page.get_by_label(says("Security code", chave_lang)).fill(outbox.last_code(EMAIL))
    page.get_by_role("button", name=says("Sign in", chave_lang), exact=True).click()
    page.wait_for_url(re.compile(r"/oidc/consent$"))
    page.get_by_role("button", name=says("Share and continue", chave_lang)).click()
    page.wait_for_url(oidc_portal.url + "/")
    assert "urn:chave:loa:2" in page.locator("#level").inner_text()

    # The SAML portal at level 2: no login page, straight to consent (single sign-on).
    logins = never_asked_to_sign_in(page)
    saml_login(page, saml_url, level=2, lang=lang)
    page.wait_for_url(re.compile(r"/saml/consent$"))
    expect(page.get_by_role("heading", name=says("Share your data with %(portal)s", chave_lang,
                                                 portal=DEMO_SAML_PORTAL_NAME))).to_be_visible()
    for required in ("Full name", "Civil identification number (NIC)"):  # isRequired="True"
        mandatory = page.get_by_label(re.compile(re.escape(says(required, chave_lang))))
        assert mandatory.is_checked() and mandatory.is_disabled()
    share_and_continue(page, chave_lang, refuse="Date of birth")
    page.wait_for_url(saml_url + "/")
    assert logins == []

    expect(page.get_by_role("heading", name=say(lang, "saml_signed_in"), level=1)).to_be_visible()
    assert page.locator("#who").inner_text() == "Maria Teste Silva"
    assert page.locator("#level").inner_text().endswith("nível 2 (urn:chave:loa:2)")
    claims = page.locator("#claims")
    assert "Maria Teste Silva" in claims.inner_text()
    assert claims.locator("[data-status=Withheld]").count() == 1  # the birth date, refused at consent
    assert "1980-05-17" not in claims.inner_text()
    assert claims.locator("[data-status=Available]").count() == 4  # name, NIC, e-mail, mobile
    fits_the_screen(page)

    # SP-initiated logout: Chave's session ends, and the OIDC portal is told by back-channel.
    page.get_by_role("button", name=say(lang, "logout")).click()
    page.wait_for_url(saml_url + "/saml/slo?*")
    expect(page.get_by_role("heading", name=say(lang, "signed_out"), level=1)).to_be_visible()
    assert page.locator("#signed-out").inner_text() == say(lang, "saml_signed_out_text")
    run_worker()  # the delivery worker posts the logout token to the OIDC portal
    delivered = BackchannelLogout.objects.get(relying_party__client_id=oidc_portal.client_id)
    assert delivered.status == BackchannelLogout.Status.DELIVERED
    page.goto(oidc_portal.url + "/")
    expect(page.get_by_role("button", name=say(lang, "login"))).to_be_visible()  # its session ended
    page.goto(live_server.url + "/area/")
    page.wait_for_url(re.compile(r"/area/enter/"))  # and Chave's


def test_saml_at_level_4_with_the_citizen_card_then_oidc_without_signing_in_again_then_chaves_sign_out(
        new_page, portals, make_citizen, agent, service, cards):
    oidc_portal, saml_url = portals
    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name, phone=PHONE, pin=PIN, language="en")
    lang, chave_lang = "en", "en"
    page = new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")
    page.chave = service

    saml_login(page, saml_url, level=4, lang=lang)
    page.wait_for_url(re.compile(r"/login/$"))
    expect(page.locator("#card-only")).to_be_visible()  # level 4: only the card reaches it
    assert DEMO_SAML_PORTAL_NAME in page.locator("#card-only").inner_text()
    page.locator("#login-card").click()
    through_the_agent(page, card, start=None, next_path="/saml/consent", lang="en")
    share_and_continue(page, chave_lang)
    page.wait_for_url(saml_url + "/")
    assert page.locator("#who").inner_text() == card.full_name
    assert page.locator("#level").inner_text().endswith("level 4 (urn:chave:loa:4)")
    assert card.nic in page.locator("#claims").inner_text()

    # The OpenID Connect portal: the card's session serves it, no login page.
    logins = never_asked_to_sign_in(page)
    page.goto(oidc_portal.url + "/")
    page.get_by_role("button", name=say(lang, "login")).click()
    page.wait_for_url(re.compile(r"/oidc/consent$"))
    expect(page.get_by_role("heading", name=says("Share your data with %(portal)s", chave_lang,
                                                 portal=DEMO_PORTAL_NAME))).to_be_visible()
    page.get_by_role("button", name=says("Share and continue", chave_lang)).click()
    page.wait_for_url(oidc_portal.url + "/")
    assert logins == []
    assert page.locator("#who").inner_text() == card.full_name
    assert "urn:chave:loa:4" in page.locator("#level").inner_text()

    # Signing out of Chave reaches the SAML portal (a frame of the signed-out page).
    page.goto(service + "/area/")
    click_and_wait(page.get_by_role("button", name=says("Sign out", chave_lang)).first)  # loaded, its frames too
    answered = [frame.url for frame in page.frames if "/saml/slo?SAMLResponse=" in frame.url]
    assert len(answered) == 1 and answered[0].startswith(service)
    page.goto(saml_url + "/")
    expect(page.get_by_role("button", name=say(lang, "login"))).to_be_visible()  # signed out there too
