"""From the Demo Portal through Chave's login and consent and back, in a real browser (Debian's
chromium driven by Playwright), in Portuguese and in English.

The portal runs in this process on a port of its own (see ``test_demo_portal.running_portal``),
pointed at Chave served by ``live_server``. The browser's language (``Accept-Language``) chooses
both the portal's words and Chave's. Chave's fields are found by their labels and its buttons by
their names in the translation catalogue (``says``); the portal's by its own strings.
"""

import os
import re

import pytest

# Playwright's sync API runs an event loop in this thread; the test thread's own database work
# (fixtures, the outbox worker) is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.login.tests.pages import says  # noqa: E402
from chave.public.management.commands.seed_demo import DEMO_PORTAL_NAME  # noqa: E402
from chave.testing.browser import expect, fits_the_screen, sign_in_with_the_key  # noqa: E402

from .test_demo_portal import PHONE, PIN, demo, portal_key_dir, running_portal  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(live_server, settings, tmp_path_factory):
    settings.CHAVE_PUBLIC_URL = live_server.url
    with running_portal(live_server.url, portal_key_dir(tmp_path_factory)) as running:
        yield running


@pytest.mark.parametrize(("locale", "chave_lang", "portal_lang"), [("pt-PT", "pt-pt", "pt"), ("en-GB", "en", "en")])
def test_from_the_demo_portal_through_login_and_consent_and_back(phone, portal, make_citizen, outbox, locale,
                                                                 chave_lang, portal_lang):
    make_citizen(phone=PHONE, pin=PIN)
    page = phone(locale)
    page.goto(portal.url + "/")
    assert page.locator("html").get_attribute("lang") == demo.text.HTML_LANG[portal_lang]
    page.get_by_role("button", name=demo.text.say(portal_lang, "login")).click()

    page.wait_for_url(re.compile(r"/login/$"))
    assert DEMO_PORTAL_NAME in page.locator("main").inner_text()
    sign_in_with_the_key(page, outbox, lang=chave_lang, phone=PHONE, pin=PIN)

    page.wait_for_url(re.compile(r"/oidc/consent$"))
    heading = says("Share your data with %(portal)s", chave_lang, portal=DEMO_PORTAL_NAME)
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    full_name = page.get_by_label(re.compile(re.escape(says("Full name", chave_lang))))
    assert full_name.is_checked() and full_name.is_disabled()  # mandatory for this portal
    page.get_by_label(re.compile(re.escape(says("Date of birth", chave_lang)))).uncheck()
    page.get_by_role("button", name=says("Share and continue", chave_lang)).click()

    page.wait_for_url(portal.url + "/")
    assert page.locator("html").get_attribute("lang") == demo.text.HTML_LANG[portal_lang]
    expect(page.get_by_role("heading", name=demo.text.say(portal_lang, "signed_in"))).to_be_visible()
    assert page.locator("#who").inner_text() == "Maria Teste Silva"
    assert "urn:chave:loa:3" in page.locator("#level").inner_text()
    claims = page.locator("#claims").inner_text()
    assert "Maria Teste Silva" in claims and "1980-05-17" not in claims
    expect(page.get_by_role("button", name=demo.text.say(portal_lang, "logout"))).to_be_visible()
    fits_the_screen(page)  # on a phone, the portal's page does not scroll sideways
