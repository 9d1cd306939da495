"""A SAML login in a real browser (Debian's chromium, Playwright): a portal on 127.0.0.1 posts its
signed AuthnRequest with the fa: extensions; the citizen signs in with the key, answers the consent
page, and the one button posts Chave's signed Response to the portal's ACS, whose pysaml2 accepts
it. No script runs on Chave's pages (its Content-Security-Policy's form-action names the ACS)."""

import base64
import html
import os
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.federation.attributes import PREFIX  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.testing.browser import click_and_wait, sign_in_with_the_key  # noqa: E402

from .conftest import register  # noqa: E402
from .sp import fa_extensions, pysaml2_portal  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
PHONE, PIN = "+351912345678", "4719"


class PortalServer:
    """The portal on 127.0.0.1: ``/start`` a page whose button posts the request to Chave, ``/saml/acs``
    keeps what is POSTed to it."""

    def __init__(self):
        self.posted, self.start_page = [], b""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, body: bytes):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                self._send(owner.start_page)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                owner.posted.append({k: v[0] for k, v in parse_qs(body).items()})
                self._send(b"<!doctype html><title>Portal</title><h1>Signed in</h1>")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.host = f"127.0.0.1:{self.server.server_port}"


@pytest.fixture
def portal_server():
    server = PortalServer()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_saml_login_with_consent_in_a_browser(live_server, settings, make_citizen, outbox, portal_server,
                                                new_page, tmp_path):
    settings.CHAVE_PUBLIC_URL = live_server.url
    from django.test import Client

    make_citizen(phone=PHONE, pin=PIN)
    portal = pysaml2_portal(tmp_path, Client().get("/saml/metadata").content.decode(), host=portal_server.host,
                            scheme="http")
    register(portal.metadata_xml, name="Portal SAML (teste)")
    request_id, form = portal.authn_request(extensions=fa_extensions({"NIC": True, "DataNascimento": False}, level=3))
    fields = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in form.items())
    portal_server.start_page = (f'<!doctype html><title>Portal</title><form method="post" action="{live_server.url}'
                                f'/saml/sso">{fields}<button>Entrar com a Chave</button></form>').encode()

    page = new_page(locale="pt-PT")
    page.goto(f"http://{portal_server.host}/start")
    click_and_wait(page.get_by_role("button", name="Entrar com a Chave"))
    assert "Portal SAML (teste)" in page.content()
    sign_in_with_the_key(page, outbox, lang="pt-pt", phone=PHONE, pin=PIN)
    page.wait_for_url(re.compile(r"/saml/consent$"))
    page.get_by_role("button", name=says("Share and continue", "pt-pt")).click()
    page.get_by_role("button", name=says("Continue to %(portal)s", "pt-pt", portal="Portal SAML (teste)")).click()
    page.wait_for_url(re.compile(r"/saml/acs$"))
    assert len(portal_server.posted) == 1
    result = portal.read_response(portal_server.posted[0]["SAMLResponse"], request_id)
    assert result.ava[PREFIX + "NIC"] and result.ava[PREFIX + "DataNascimento"]
    assert portal_server.posted[0]["RelayState"] == "volta=/inicio"


def test_an_sp_logout_answered_by_http_post_in_a_browser(live_server, settings, make_citizen, outbox, portal_server,
                                                         new_page, tmp_path):
    """An SP whose logout service is HTTP-POST only: its signed LogoutRequest, posted by the
    browser, signs the citizen out of Chave, and the signed-out page's one button posts Chave's
    signed LogoutResponse back (the page's form-action allows that address), which pysaml2 accepts."""
    settings.CHAVE_PUBLIC_URL = live_server.url
    from django.test import Client
    from saml2 import BINDING_HTTP_POST
    from saml2.xmldsig import DIGEST_SHA256, SIG_RSA_SHA256

    from chave.saml import idp

    make_citizen(phone=PHONE, pin=PIN)
    portal = pysaml2_portal(tmp_path, Client().get("/saml/metadata").content.decode(), host=portal_server.host,
                            scheme="http", slo_bindings=(BINDING_HTTP_POST,))
    register(portal.metadata_xml, name="Portal SAML (teste)")
    request_id, form = portal.authn_request(extensions=fa_extensions({"NIC": True}, level=3))
    fields = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in form.items())
    portal_server.start_page = (f'<!doctype html><title>Portal</title><form method="post" action="{live_server.url}'
                                f'/saml/sso">{fields}<button>Entrar com a Chave</button></form>').encode()
    page = new_page(locale="pt-PT")
    page.goto(f"http://{portal_server.host}/start")
    page.get_by_role("button", name="Entrar com a Chave").click()
    sign_in_with_the_key(page, outbox, lang="pt-pt", phone=PHONE, pin=PIN)
    page.wait_for_url(re.compile(r"/saml/consent$"))
    page.get_by_role("button", name=says("Share and continue", "pt-pt")).click()
    page.get_by_role("button", name=says("Continue to %(portal)s", "pt-pt", portal="Portal SAML (teste)")).click()
    page.wait_for_url(re.compile(r"/saml/acs$"))
    name_id = portal.read_response(portal_server.posted[0]["SAMLResponse"], request_id).name_id

    logout_id, signed = portal.client.create_logout_request(idp.slo_url(), idp.entity_id(), name_id=name_id, sign=True,
                                                            sign_alg=SIG_RSA_SHA256, digest_alg=DIGEST_SHA256)
    saml_request = base64.b64encode(str(signed).encode()).decode()  # the HTTP-POST binding's field
    portal_server.start_page = (f'<!doctype html><title>Portal</title><form method="post" action="{live_server.url}'
                                f'/saml/slo"><input type="hidden" name="SAMLRequest" value="{saml_request}">'
                                f'<input type="hidden" name="RelayState" value="sair"><button>Sair</button>'
                                f'</form>').encode()
    page.goto(f"http://{portal_server.host}/start")
    page.get_by_role("button", name="Sair").click()
    page.get_by_role("heading", name=says("You have signed out", "pt-pt")).wait_for()
    page.get_by_role("button", name=says("Return to %(portal)s", "pt-pt", portal="Portal SAML (teste)")).click()
    page.wait_for_url(re.compile(rf"^http://{re.escape(portal_server.host)}/saml/slo$"))  # the portal's, not Chave's
    posted = portal_server.posted[1]
    verdict = portal.client.parse_logout_request_response(posted["SAMLResponse"], BINDING_HTTP_POST)
    assert verdict.response.in_response_to == logout_id and posted["RelayState"] == "sair"
    assert verdict.response.status.status_code.value == "urn:oasis:names:tc:SAML:2.0:status:Success"
