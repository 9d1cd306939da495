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
from chave.login.tests.test_login_browser import CHROMIUM, CHROMIUM_ARGS, PHONE_SCREEN  # noqa: E402
from chave.public.management.commands.seed_demo import DEMO_PORTAL_NAME  # noqa: E402

from .test_demo_portal import PHONE, PIN, demo, portal_key_dir, running_portal  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def portal(live_server, settings, tmp_path_factory):
    settings.CHAVE_PUBLIC_URL = live_server.url
    with running_portal(live_server.url, portal_key_dir(tmp_path_factory)) as running:
        yield running


@pytest.mark.parametrize(("locale", "chave_lang", "portal_lang"), [("pt-PT", "pt-pt", "pt"), ("en-GB", "en", "en")])
def test_from_the_demo_portal_through_login_and_consent_and_back(chromium, portal, make_citizen, outbox,
                                                                 locale, chave_lang, portal_lang):
    make_citizen(phone=PHONE, pin=PIN)
    context = chromium.new_context(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True, locale=locale)
    context.set_default_timeout(10_000)
    try:
        page = context.new_page()
        page.goto(portal.url + "/")
        assert page.locator("html").get_attribute("lang") == demo.text.HTML_LANG[portal_lang]
        page.get_by_role("button", name=demo.text.say(portal_lang, "login")).click()

        page.wait_for_url(re.compile(r"/login/$"))
        assert DEMO_PORTAL_NAME in page.locator("main").inner_text()
        page.get_by_label(says("Mobile number or e-mail", chave_lang)).fill("912 345 678")
        page.get_by_label(says("PIN of the Digital Mobile Key", chave_lang)).fill(PIN)
        page.get_by_role("button", name=says("Continue", chave_lang)).click()

        page.wait_for_url(re.compile(r"/login/code/$"))
        page.get_by_label(says("Security code", chave_lang)).fill(outbox.last_code(PHONE))
        page.get_by_role("button", name=says("Sign in", chave_lang), exact=True).click()

        page.wait_for_url(re.compile(r"/oidc/consent$"))
        heading = says("Share your data with %(portal)s", chave_lang, portal=DEMO_PORTAL_NAME)
        assert page.get_by_role("heading", name=heading).is_visible()
        full_name = page.get_by_label(re.compile(re.escape(says("Full name", chave_lang))))
        assert full_name.is_checked() and full_name.is_disabled()  # mandatory for this portal
        page.get_by_label(re.compile(re.escape(says("Date of birth", chave_lang)))).uncheck()
        page.get_by_role("button", name=says("Share and continue", chave_lang)).click()

        page.wait_for_url(portal.url + "/")
        assert page.locator("html").get_attribute("lang") == demo.text.HTML_LANG[portal_lang]
        assert page.get_by_role("heading", name=demo.text.say(portal_lang, "signed_in")).is_visible()
        assert page.locator("#who").inner_text() == "Maria Teste Silva"
        assert "urn:chave:loa:3" in page.locator("#level").inner_text()
        claims = page.locator("#claims").inner_text()
        assert "Maria Teste Silva" in claims and "1980-05-17" not in claims
        assert page.get_by_role("button", name=demo.text.say(portal_lang, "logout")).is_visible()
        width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
        assert width[0] <= width[1], "the portal's page scrolls sideways on a phone"
    finally:
        context.close()
