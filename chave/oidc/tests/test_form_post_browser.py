"""``response_mode=form_post`` in a real browser (Debian's chromium, Playwright), in Portuguese and
in English: after the login, one button posts the answer to the portal — with no script (Chave's
Content-Security-Policy forbids them) and within that policy (its ``form-action`` names the
portal); the portal receives the code and ``state`` in the POST body."""

import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.login.tests.pages import says  # noqa: E402
from chave.testing.accessibility import assert_accessible  # noqa: E402
from chave.testing.browser import expect, fits_the_screen, sign_in_with_the_key  # noqa: E402

from .portal import register_portal  # noqa: E402
from .signin import renew  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE, PIN = "+351912345678", "4719"
SHOTS = os.environ.get("CHAVE_SCREENSHOTS")  # a folder: the pages are saved there to be looked at


class Callback:
    """The portal's redirect URI on 127.0.0.1: keeps what is POSTed to it."""

    def __init__(self):
        self.posted = []
        posted = self.posted

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                posted.append({k: v[0] for k, v in parse_qs(body).items()})
                page = b"<!doctype html><title>Portal</title><h1>Signed in</h1>"
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
def test_form_post_hands_the_code_to_the_portal_with_one_button(live_server, settings, make_citizen, outbox,
                                                                 callback, new_page, locale, lang):
    settings.CHAVE_PUBLIC_URL = live_server.url
    make_citizen(phone=PHONE, pin=PIN)
    portal = register_portal(redirect_uri=callback.url, attributes=["NomeCompleto"], mandatory=["NomeCompleto"])
    for size, viewport in (("phone", {"width": 390, "height": 844}), ("desktop", {"width": 1280, "height": 800})):
        page = new_page(viewport=viewport, locale=locale)
        page.goto(live_server.url + portal.authorize_url(scope="openid profile", response_mode="form_post"))
        sign_in_with_the_key(page, outbox, lang=lang, phone=PHONE, pin=PIN)
        if size == "phone":  # the consent is remembered for the second browser
            page.wait_for_url(re.compile(r"/oidc/consent$"))
            page.get_by_role("button", name=says("Share and continue", lang)).click()
        button = page.get_by_role("button", name=says("Continue to %(portal)s", lang, portal="Portal das Finanças (teste)"))
        button.wait_for()
        fits_the_screen(page)
        if SHOTS:
            page.screenshot(path=str(Path(SHOTS) / f"form_post-{lang}-{size}.png"), full_page=True)
        button.click()
        page.wait_for_url(callback.url)
        expect(page.get_by_role("heading", name="Signed in")).to_be_visible()
        assert callback.posted[-1].get("state") == portal.state and callback.posted[-1].get("code"), callback.posted
        assert callback.posted[-1]["iss"] == live_server.url
        renew(portal)  # the next request is a new one


@pytest.mark.parametrize("lang", ["pt-pt", "en"])
def test_the_form_post_page_is_accessible(client, lang):
    portal = register_portal()
    client.cookies[settings_language_cookie()] = lang
    assert_accessible(client.get(portal.authorize_url(response_mode="form_post", prompt="none")), lang,
                      "form_post page")


def settings_language_cookie() -> str:
    from django.conf import settings

    return settings.LANGUAGE_COOKIE_NAME
