"""The real browser of the browser tests (``pytest -m browser``): Debian's chromium driven by
Playwright's sync API, headless. ``chave/conftest.py`` offers the fixtures to every app's tests:

- ``browser``: one chromium per test module (the ``chromium`` fixture), launched again for the
  next test if it exits: a crash fails the test it happens in, not every later test of the module;
- ``new_page``: a new page in a context of its own (``new_page(viewport=..., locale=...)``);
- ``phone``: a new phone-sized page (``phone(locale)``, the locale sent as Accept-Language).

Pages are closed after the test.

What Chromium itself prints (its stderr) reaches the test it was printed in as captured output:
Playwright's driver logs it under ``DEBUG=pw:browser``, set for the driver only. A test that fails
because Chromium died then shows why, and names itself (``chromium exited during <test>``).

Test modules that use them set ``DJANGO_ALLOW_ASYNC_UNSAFE`` before their imports: Playwright's
sync API runs an event loop in the test thread, whose own database work is synchronous and safe.
"""

from __future__ import annotations

import os
import re
import sys

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PHONE_SCREEN = {"width": 390, "height": 844}
PATIENCE_MS = 10_000  # how long a page action or an expectation waits


class Chromium:
    """Debian's chromium through one Playwright driver: :meth:`for_test` gives the running browser,
    or launches a new one when the last has exited."""

    def __init__(self, playwright):
        self.playwright = playwright
        self.browser = None
        self.running = ""  # the test the browser serves, for the message if it exits
        self.closing = False

    def for_test(self, nodeid: str):
        self.running = nodeid
        if self.browser is None or not self.browser.is_connected():
            self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                                           args=CHROMIUM_ARGS)
            self.browser.on("disconnected", self._exited)
        return self.browser

    def _exited(self, browser) -> None:
        if browser is self.browser and not self.closing:
            print(f"chromium exited during {self.running}", file=sys.stderr, flush=True)

    def close(self) -> None:
        self.closing = True
        if self.browser is not None and self.browser.is_connected():
            self.browser.close()


@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (make test does)")
    from playwright.sync_api import expect as playwright_expect
    from playwright.sync_api import sync_playwright

    # The driver inherits the environment when it starts: with pw:browser it logs Chromium's own
    # output, which pytest captures into the test that was running.
    before = os.environ.get("DEBUG")
    os.environ["DEBUG"] = "pw:browser"
    try:
        manager = sync_playwright()
        playwright = manager.__enter__()
    finally:
        if before is None:
            os.environ.pop("DEBUG", None)
        else:
            os.environ["DEBUG"] = before
    playwright_expect.set_options(timeout=PATIENCE_MS)  # expect()'s patience, as the pages'
    browsers = Chromium(playwright)
    try:
        yield browsers
    finally:
        browsers.close()
        manager.__exit__(None, None, None)


@pytest.fixture
def browser(chromium, request):
    return chromium.for_test(request.node.nodeid)


@pytest.fixture
def new_page(browser):
    """A new page in a browser context of its own: ``new_page(**context options)`` (viewport,
    locale, ...); every context is closed after the test. Anything the pages' Content-Security-
    Policy blocked (the browser says so on the console) fails the test: a page must not depend
    on what its own policy forbids."""
    contexts, blocked = [], []

    def open_page(**options):
        context = browser.new_context(**options)
        context.set_default_timeout(PATIENCE_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("console", lambda message: blocked.append(f"{page.url}: {message.text}")
                if "Content Security Policy" in message.text else None)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not blocked, "blocked by the Content-Security-Policy:\n" + "\n".join(blocked)


@pytest.fixture
def phone(new_page):
    """A new phone-sized browser; pass the Accept-Language locale with ``phone(locale)``."""

    def open_page(locale="en-GB"):
        return new_page(viewport=PHONE_SCREEN, is_mobile=True, has_touch=True, locale=locale)

    return open_page


def expect(locator):
    """Playwright's ``expect``: its assertions retry until the page shows what is asserted, for as
    long as the pages' default timeout (set by the ``chromium`` fixture). Use it after a click
    rather than ``locator.is_visible()``, which looks once: a click does not wait for the answer's
    page, so under load it would look at the page the click left."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def click_and_wait(locator, **options):
    """Clicks ``locator`` and waits for the page the click leads to (a form's answer, a link's page),
    loaded. A click does not wait for it: what is read next (an element's text or attribute, the
    URL, the database) could otherwise be the page the click left, or the state before the request
    ran. Not for a page that refreshes itself: its own refresh would do."""
    with locator.page.expect_navigation():
        locator.click(**options)


def fits_the_screen(page):
    """The page does not scroll sideways."""
    width = page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    assert width[0] <= width[1], f"{page.url} scrolls sideways: {width[0]}px of content in {width[1]}px"


def sign_in_with_the_key(page, outbox, *, lang: str, phone: str, pin: str, typed: str = "912 345 678"):
    """On Chave's login page: the mobile number (as ``typed``) and PIN, then the code sent to
    ``phone``, read from the outbox; the words are the catalogue's in ``lang``."""
    from chave.login.tests.pages import says

    page.wait_for_url(re.compile(r"/login/$"))
    page.get_by_label(says("Mobile number or e-mail", lang)).fill(typed)
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(pin)
    page.get_by_role("button", name=says("Continue", lang)).click()
    page.wait_for_url(re.compile(r"/login/code/$"))
    page.get_by_label(says("Security code", lang)).fill(outbox.last_code(phone))
    page.get_by_role("button", name=says("Sign in", lang), exact=True).click()
