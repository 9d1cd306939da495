""""Cancel and go back to the portal" in a real browser (Debian's chromium, Playwright), on a phone
and a desktop, in Portuguese and in English: the button names the portal, needs no script, and
brings the browser back to the portal with ``access_denied``, ``state`` and ``iss``. The pages
with the button pass the accessibility checks."""

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.login.tests.pages import says  # noqa: E402
from chave.testing.accessibility import assert_accessible  # noqa: E402
from chave.testing.browser import expect, fits_the_screen  # noqa: E402

from .portal import register_portal  # noqa: E402
from .signin import renew  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE, PIN = "+351912345678", "4719"
SHOTS = os.environ.get("CHAVE_SCREENSHOTS")  # a folder: the pages are saved there to be looked at
PORTAL = "Portal das Finanças (teste)"


class Callback:
    """The portal's redirect URI on 127.0.0.1: keeps the query of each GET."""

    def __init__(self):
        self.received = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                if urlsplit(self.path).path == "/callback":  # not the browser's /favicon.ico
                    received.append({k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()})
                page = b"<!doctype html><title>Portal</title><h1>Back at the portal</h1>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/callback"


@pytest.fixture
def callback():
    server = Callback()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.mark.parametrize(("locale", "lang"), [("pt-PT", "pt-pt"), ("en-GB", "en")])
def test_cancel_brings_the_citizen_back_to_the_portal(live_server, settings, make_citizen, outbox, callback,
                                                       new_page, locale, lang):
    settings.CHAVE_PUBLIC_URL = live_server.url
    make_citizen(phone=PHONE, pin=PIN)
    portal = register_portal(redirect_uri=callback.url, name=PORTAL)
    for size, viewport in (("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 900})):
        page = new_page(viewport=viewport, locale=locale)
        page.goto(live_server.url + renew(portal).authorize_url())
        page.wait_for_url(re.compile(r"/login/$"))
        if size == "desktop":  # past the PIN: the code page has the button too
            page.get_by_label(says("Mobile number or e-mail", lang)).fill("912 345 678")
            page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
            page.get_by_role("button", name=says("Continue", lang)).click()
            page.wait_for_url(re.compile(r"/login/code/$"))
        button = page.get_by_role("button", name=says("Cancel and go back to %(portal)s", lang, portal=PORTAL))
        button.wait_for()
        fits_the_screen(page)
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / f"cancel-{lang}-{size}.png"), full_page=True)
        second_tab = None
        if size == "phone":  # the same sign-in open in a second tab of the same browser
            second_tab = page.context.new_page()
            second_tab.goto(live_server.url + "/login/")
        button.click()
        page.wait_for_url(re.compile(re.escape(callback.url) + r"\?"))
        expect(page.get_by_role("heading", name="Back at the portal")).to_be_visible()
        answer = callback.received[-1]
        assert answer["error"] == "access_denied" and answer["state"] == portal.state, answer
        assert answer["iss"] == live_server.url and "code" not in answer
        if second_tab is not None:  # cancelled already: the second tab's button says so, sends nothing
            second_tab.get_by_role("button", name=says("Cancel and go back to %(portal)s", lang, portal=PORTAL)).click()
            second_tab.get_by_role("heading", name=says("This sign-in has already ended", lang)).wait_for()
            fits_the_screen(second_tab)
            if SHOTS:
                second_tab.screenshot(path=str(Path(SHOTS) / f"cancel-gone-{lang}.png"), full_page=True)
            assert len(callback.received) == 1


@pytest.mark.parametrize("lang", ["pt-pt", "en"])
def test_the_pages_with_the_button_are_accessible(client, lang):
    portal = register_portal(name=PORTAL)
    client.cookies[settings_language_cookie()] = lang
    client.get(renew(portal).authorize_url())
    assert_accessible(client.get("/login/"), lang, "login page with the cancel button")
    page = client.get("/login/").content.decode()
    named = {"request": re.search(r'name="request" value="([0-9a-f]+)"', page).group(1)}
    assert client.post("/oidc/cancel", named).status_code == 302  # to the portal
    assert_accessible(client.post("/oidc/cancel", named), lang, "a cancel with nothing waiting", status=400)


def settings_language_cookie() -> str:
    from django.conf import settings

    return settings.LANGUAGE_COOKIE_NAME
