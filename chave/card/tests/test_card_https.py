"""The Citizen Card from an https Chave on the public internet, in today's chromium.

In production Chave is an https site on a public address and the card agent is plain http on the
citizen's own computer (127.0.0.1). Browsers guard that step: Chrome's Local Network Access
(formerly Private Network Access) refuses requests from public sites to local addresses, and
a cross-site form from https to http may travel without its ``Origin``. Chave's no-JavaScript
protocol uses only top-level form navigations, with ``Referrer-Policy: origin`` so that the
agent still sees Chave's origin (``PROTOCOL.md``).

Here Chave is served over TLS as ``https://chave.test:<port>`` (:mod:`chave.testing.tls`),
chromium resolves ``chave.test`` to 127.0.0.1 and is told, with
``--ip-address-space-overrides``, that Chave's address is *public*, as it is in production. The
test first shows that the browser does enforce Local Network Access there (a script's request
from Chave's page to the agent is refused), then signs in to the personal area with the card
through the real agent and PKCS#11, with secure cookies as in production.
"""

import os
import re

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.testing.browser import CHROMIUM, CHROMIUM_ARGS, PHONE_SCREEN  # noqa: E402
from chave.testing.tls import TlsLiveServer  # noqa: E402

from .conftest import CARD_PIN, card_citizen, running_agent  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOST = "chave.test"
MOBILE = "+351916000333"


@pytest.fixture
def public_chave(settings, live_server, cards, tmp_path):
    """Chave at https://chave.test:<port>, configured as in production (secure cookies)."""
    server = TlsLiveServer(HOST, tmp_path)
    settings.CHAVE_PUBLIC_URL = server.url
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, HOST]
    settings.CSRF_TRUSTED_ORIGINS = [server.url]
    settings.SESSION_COOKIE_SECURE = settings.CSRF_COOKIE_SECURE = True
    yield server
    server.stop()


@pytest.fixture
def public_agent(settings, card_dir, public_chave):
    with running_agent(card_dir, public_chave.url) as running:
        settings.CHAVE_CARD_AGENT_PORT = running.port
        yield running


@pytest.fixture
def public_browser(public_chave):
    """Chromium that takes chave.test for a public site at 127.0.0.1."""
    from playwright.sync_api import sync_playwright

    args = [*CHROMIUM_ARGS, f"--host-resolver-rules=MAP {HOST} 127.0.0.1",
            f"--ip-address-space-overrides=127.0.0.1:{public_chave.port}=public"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        context = browser.new_context(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True, locale="pt-PT",
                                      ignore_https_errors=True)
        context.set_default_timeout(15_000)
        yield context.new_page()
        context.close()
        browser.close()


def test_the_card_signs_in_from_an_https_public_site_under_local_network_access(
        public_chave, public_agent, public_browser, cards, make_citizen):
    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE, language="pt-pt")
    page = public_browser
    page.goto(public_chave.url + "/area/enter/")
    assert page.evaluate("window.isSecureContext")
    # The browser treats Chave as public: a script may not reach the citizen's computer.
    reached = page.evaluate(
        "url => fetch(url, {mode: 'no-cors'}).then(() => 'reached', () => 'refused')",
        public_agent.own_origin + "/")
    assert reached == "refused"

    page.locator("#enter-card").click()
    page.wait_for_url(re.compile(re.escape(public_chave.url) + r"/card/\?next="))
    page.locator("#card-continue").click()
    page.wait_for_url(public_agent.own_origin + "/sign")  # the agent took Chave's origin
    page.locator("#card").select_option(card.token_label)  # the session's other test cards are in too
    page.locator("#pin").fill(CARD_PIN)
    page.locator("#agent-sign").click()
    page.wait_for_url(public_chave.url + "/area/")
    assert card.full_name in page.locator("#name").inner_text()
    assert "4" in page.locator("#entered").inner_text()
    cookies = {c["name"]: c for c in page.context.cookies(public_chave.url)}
    from django.conf import settings

    assert cookies[settings.SESSION_COOKIE_NAME]["secure"] and cookies[settings.SESSION_COOKIE_NAME]["httpOnly"]
    assert CARD_PIN not in page.content()
