"""The Demo Portal (``examples/demo_portal``) against Chave served for real (``live_server``).

The portal runs in this process on a port of its own (waitress in a thread), registered the way
``chave seed_demo`` registers it (``private_key_jwt`` with the JWKS URI the portal publishes), and
a citizen's browser (``requests``: cookies, redirects, forms) goes from the portal through Chave's
login and consent pages and back. What is asserted is what the citizen sees on the portal's
pages, what the portal sent Chave, and what Chave recorded.
"""

from __future__ import annotations

import contextlib
import html
import re
import secrets
import stat
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey

from chave.federation.models import RelyingParty
from chave.oidc import keys
from chave.oidc.management.commands.demo_portal import portal_package
from chave.oidc.models import ClientAssertion
from chave.public.management.commands.seed_demo import (
    DEMO_PORTAL_NAME,
    seed_demo_portal,
)

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+351912345678"
PIN = "4719"
BOUND = 30  # seconds: the most a request to a local server may take

demo = portal_package()
oidc = demo.oidc


# --- the portal, running ----------------------------------------------------------------------


@dataclass
class RunningPortal:
    url: str
    client_id: str
    app: object  # demo_portal.DemoPortal


@contextlib.contextmanager
def serving(make_app):
    """An application served by waitress on a free port of 127.0.0.1 (in a thread): yields
    ``(url, app)``, where ``make_app(url)`` made the application; stopped on exit."""
    import waitress
    from waitress import wasyncore

    holder = {}
    server = waitress.create_server(lambda environ, start: holder["app"](environ, start), host="127.0.0.1",
                                    port=0, threads=4, ident="demo-portal-test")
    thread = threading.Thread(target=server.run, name="demo-portal", daemon=True)
    try:
        url = f"http://127.0.0.1:{server.effective_port}"
        holder["app"] = make_app(url)
        thread.start()
        yield url, holder["app"]
    finally:
        # Close every socket from the server's own loop (kept-alive connections too), which then ends.
        try:
            if not thread.is_alive():
                raise OSError("not running")
            server.trigger.pull_trigger(lambda: wasyncore.close_all(server._map))
        except OSError:  # not started, or its wake-up pipe is gone (seen once under xdist): close from here
            wasyncore.close_all(server._map)
        if thread.ident:
            thread.join(BOUND)
        server.task_dispatcher.shutdown()
        assert not thread.is_alive(), "the demo portal did not stop"


@contextlib.contextmanager
def running_portal(issuer: str, data_dir):
    """The Demo Portal on a free port of 127.0.0.1, registered and approved at Chave as
    ``seed_demo`` does it, pointed at ``issuer``; stopped on exit."""
    registered = {}

    def make_app(url):
        registered["party"], _notes = seed_demo_portal(url)
        return demo.DemoPortal(demo.Config(issuer=issuer, client_id=registered["party"].client_id, base_url=url,
                                           data_dir=data_dir, timeout=BOUND))

    with serving(make_app) as (url, app):
        yield RunningPortal(url, registered["party"].client_id, app)


def portal_key_dir(tmp_path_factory):
    """One key for the whole run: Chave caches a party's JWKS URI for minutes, and a port may come
    round again."""
    return tmp_path_factory.getbasetemp() / "demo-portal-key"


@pytest.fixture
def portal(live_server, settings, tmp_path_factory):
    settings.CHAVE_PUBLIC_URL = live_server.url  # Chave's issuer is the address it is served at
    with running_portal(live_server.url, portal_key_dir(tmp_path_factory)) as running:
        yield running


# --- the citizen's browser ------------------------------------------------------------------------


def text(response) -> str:
    """The visible words of a page, whitespace collapsed."""
    body = re.sub(r"<(script|style)\b.*?</\1>", " ", response.text, flags=re.S)
    body = re.sub(r"</?(strong|code|em)\b[^>]*>", "", body)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", body)).split())


class Browser:
    def __init__(self, lang: str = "pt-PT"):
        self.http = requests.Session()
        self.http.headers["Accept-Language"] = lang

    def get(self, url: str, **kwargs):
        return self.http.get(url, timeout=BOUND, **kwargs)

    def post(self, url: str, data=None, **kwargs):
        return self.http.post(url, data=data, timeout=BOUND, **kwargs)

    def submit(self, page, fields: dict, **kwargs):
        """Post ``fields`` to the page's own address, with the CSRF token of its form."""
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
        assert token, f"no form on {page.url}:\n{text(page)[:1500]}"
        return self.post(page.url, {"csrfmiddlewaretoken": token.group(1), **fields}, **kwargs)


def through_chave(browser: Browser, page, outbox, *, share: list[str] | None = None, refuse: bool = False):
    """From Chave's login page to wherever Chave sends the browser back: identifier and PIN, the
    code read from the outbox (as from the phone), and the consent page (share ``share`` of the
    optional attributes, all when None; or refuse)."""
    assert urlsplit(page.url).path == "/login/", page.url
    page = browser.submit(page, {"identifier": PHONE, "pin": PIN})
    assert urlsplit(page.url).path == "/login/code/", text(page)[:1500]
    page = browser.submit(page, {"code": outbox.last_code(PHONE)})
    if urlsplit(page.url).path == "/oidc/consent":
        if refuse:
            return browser.submit(page, {"decision": "refuse"})
        offered = re.findall(r'name="attribute" value="([^"]+)"', page.text)
        chosen = offered if share is None else [a for a in offered if a in share]
        page = browser.submit(page, {"decision": "allow", "attribute": chosen})
    return page


def log_in(browser: Browser, portal: RunningPortal, outbox, **kwargs):
    page = browser.post(portal.url + "/login")
    return through_chave(browser, page, outbox, **kwargs)


def signed_in_user(portal: RunningPortal) -> dict:
    users = [s.user for s in portal.app.sessions._by_id.values() if s.user]
    assert len(users) == 1
    return users[0]


# --- the login ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("accept", "query", "heading", "hello", "level", "refused"), [
    ("pt-PT,pt;q=0.9", "", "Sessão iniciada no Portal de Demonstração", "Olá, Maria Teste Silva.", "nível 3",
     "Data de nascimento: recusado por si"),
    ("pt-PT", "?lang=en", "Signed in to the Demo Portal", "Hello, Maria Teste Silva.", "level 3",
     "Date of birth: refused by you"),
])
def test_a_citizen_logs_in_to_the_demo_portal_and_sees_what_chave_shared(
        portal, make_citizen, outbox, accept, query, heading, hello, level, refused):
    key = make_citizen(phone=PHONE, pin=PIN)
    browser = Browser(accept)
    home = browser.get(portal.url + "/" + query)
    assert home.status_code == 200
    button = "Log in with Chave" if query else "Entrar com a Chave"
    assert re.search(rf'<button type="submit" class="primary"[^>]*>{button}</button>', home.text)
    assert f'<html lang="{"en" if query else "pt-PT"}">' in home.text

    # The request the portal sends: PKCE with S256, state and nonce, its registered callback.
    started = browser.post(portal.url + "/login", allow_redirects=False)
    assert started.status_code == 303
    request = {k: v[0] for k, v in parse_qs(urlsplit(started.headers["Location"]).query).items()}
    assert started.headers["Location"].startswith(portal.app.provider.issuer + "/oidc/authorize?")
    assert request["client_id"] == portal.client_id
    assert request["redirect_uri"] == portal.url + "/callback"
    assert request["code_challenge_method"] == "S256" and len(request["code_challenge"]) == 43
    assert len(request["state"]) >= 32 and len(request["nonce"]) >= 32
    assert request["scope"].split()[0] == "openid"

    login_page = browser.get(started.headers["Location"])
    assert DEMO_PORTAL_NAME in text(login_page)  # Chave names the portal the citizen is signing in to
    page = through_chave(browser, login_page, outbox, share=["NIC", "NomeProprio", "NomeApelido"])

    assert page.url == portal.url + "/"
    shown = text(page)
    assert f"<h1>{heading}</h1>" in page.text
    assert hello in shown
    assert "Maria Teste Silva" in page.text and key.citizen.doc_number in shown
    assert f"{level} (urn:chave:loa:3)" in shown
    assert "pin, sms, mfa" in shown
    assert refused in shown
    assert "1980-05-17" not in shown  # the birth date was refused at consent
    # The portal authenticated with private_key_jwt: Chave kept the assertion's jti.
    party = RelyingParty.objects.get(client_id=portal.client_id)
    assert party.jwks is None and party.jwks_uri == portal.url + "/jwks.json"
    assert ClientAssertion.objects.filter(relying_party=party).count() == 1


def test_the_portal_checked_the_id_token_it_keeps_for_logout(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    log_in(Browser(), portal, outbox)
    user = signed_in_user(portal)
    claims = jwt.decode(user["id_token"], portal.app.provider.keys()).claims
    assert claims["aud"] == portal.client_id and claims["iss"] == portal.app.provider.issuer
    assert user["id_token_claims"]["sub"] == user["claims"]["sub"] == claims["sub"]
    assert user["sid"] == claims["sid"]


def test_the_callback_refuses_a_state_it_did_not_issue_and_a_replayed_one(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    browser = Browser("en")
    browser.post(portal.url + "/login", allow_redirects=False)  # a login is going on in this browser
    forged = browser.get(portal.url + "/callback", params={"state": secrets.token_urlsafe(24), "code": "x"})
    assert forged.status_code == 400
    assert "This login was not started here, or it took too long." in text(forged)
    assert not ClientAssertion.objects.exists()  # nothing was sent to Chave

    page = log_in(browser, portal, outbox)
    assert "Signed in to the Demo Portal" in text(page)
    callback = next(r.headers["Location"] for r in page.history if "/callback?" in r.headers.get("Location", ""))
    replay = Browser("en").get(callback)  # someone else's browser with the same callback URL
    assert replay.status_code == 400 and "This login was not started here" in text(replay)
    again = browser.get(callback)  # the same browser: the state was used up
    assert again.status_code == 400
    assert ClientAssertion.objects.count() == 1  # only the real login redeemed a code


@pytest.mark.parametrize("iss", [None, "https://another-provider.example"])
def test_the_callback_refuses_a_response_that_does_not_name_chave_as_its_issuer(portal, iss):
    from urllib.parse import parse_qs, urlsplit

    browser = Browser("en")
    started = browser.post(portal.url + "/login", allow_redirects=False)
    state = parse_qs(urlsplit(started.headers["Location"]).query)["state"][0]
    params = {"state": state, "code": "a-code-from-somewhere"}
    if iss:
        params["iss"] = iss  # a mix-up: another provider's response delivered to this callback
    answer = browser.get(portal.url + "/callback", params=params)
    assert answer.status_code == 400 and "iss" in text(answer)
    assert not ClientAssertion.objects.exists()  # the code was never sent to Chave


def test_refusing_at_consent_brings_the_citizen_back_not_signed_in(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    browser = Browser("en")
    page = log_in(browser, portal, outbox, refuse=True)
    assert page.url.startswith(portal.url + "/callback?")
    assert "You chose not to log in to the Demo Portal with Chave." in text(page)
    home = browser.get(portal.url + "/")
    assert "Log in with Chave" in text(home) and "Signed in" not in text(home)


def test_chave_unreachable_is_a_page_not_a_crash(tmp_path_factory):
    with socket_closed_port() as dead:
        with running_portal(dead, portal_key_dir(tmp_path_factory)) as running:
            page = Browser("en").post(running.url + "/login")
    assert page.status_code == 502
    assert f"Chave could not be reached at {dead}." in text(page)


@contextlib.contextmanager
def socket_closed_port():
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    yield f"http://127.0.0.1:{port}"


# --- logout -------------------------------------------------------------------------------------------


def test_logout_forgets_the_session_and_sends_the_browser_to_chaves_end_session_endpoint(
        portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    browser = Browser("en")
    page = log_in(browser, portal, outbox)
    id_token = signed_in_user(portal)["id_token"]
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)

    # Without the form's token (another site's form): refused, still signed in.
    refused = browser.post(portal.url + "/logout", {"csrf": "forged"}, allow_redirects=False)
    assert refused.status_code == 400
    assert "Signed in to the Demo Portal" in text(browser.get(portal.url + "/"))

    out = browser.post(portal.url + "/logout", {"csrf": csrf}, allow_redirects=False)
    assert out.status_code == 303
    location = out.headers["Location"]
    assert location.startswith(portal.app.provider.issuer + "/oidc/logout?")
    params = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert params["id_token_hint"] == id_token
    assert params["post_logout_redirect_uri"] == portal.url + "/signed-out"
    party = RelyingParty.objects.get(client_id=portal.client_id)
    assert params["post_logout_redirect_uri"] in party.post_logout_redirect_uris
    assert params["client_id"] == portal.client_id and params["state"]
    home = browser.get(portal.url + "/")
    assert "Log in with Chave" in text(home)
    assert "You left the Demo Portal." in text(browser.get(portal.url + "/signed-out"))


def logout_token(portal: RunningPortal, *, key=None, header=None, **claims) -> str:
    """A logout token as Chave signs it (Back-Channel Logout 1.0 §2.4), with ``claims`` changed
    (a value of None leaves the claim out)."""
    now = int(time.time())
    user = signed_in_user(portal)
    body = {"iss": portal.app.provider.issuer, "aud": portal.client_id, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(16), "sid": user["sid"], "sub": user["id_token_claims"]["sub"],
            "events": {oidc.BACKCHANNEL_LOGOUT_EVENT: {}}, **claims}
    body = {k: v for k, v in body.items() if v is not None}
    row = keys.active_key("RS256")
    return jwt.encode({"alg": "RS256", "kid": row.kid, "typ": "logout+jwt", **(header or {})}, body,
                      key or keys.private_key(row))


def test_a_logout_token_from_chave_ends_the_portals_session_of_that_chave_session(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    browser = Browser("en")
    log_in(browser, portal, outbox)
    other = Browser("en")  # another browser, not signed in: untouched
    other.get(portal.url + "/")

    answer = requests.post(portal.url + "/backchannel-logout", data={"logout_token": logout_token(portal)},
                           timeout=BOUND)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert "Log in with Chave" in text(browser.get(portal.url + "/"))


def test_a_logout_token_naming_only_the_subject_ends_that_citizens_sessions(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    browser = Browser("en")
    log_in(browser, portal, outbox)
    answer = requests.post(portal.url + "/backchannel-logout", data={"logout_token": logout_token(portal, sid=None)},
                           timeout=BOUND)
    assert answer.status_code == 200
    assert "Log in with Chave" in text(browser.get(portal.url + "/"))


def bad_logout_tokens():
    """Each made when the test runs (times relative to now: the suite may run long after import)."""
    return [
        ({"aud": "chave-someone-else"}, "'aud'"),
        ({"iss": "https://idp.example"}, "'iss'"),
        ({"events": None}, "'events'"),
        ({"events": {"http://schemas.openid.net/event/other": {}}}, "'events'"),
        ({"nonce": "n-0S6_WzA2Mj"}, "'nonce'"),  # an ID token must never pass for a logout token
        ({"sid": None, "sub": None}, "neither 'sid' nor 'sub'"),
        ({"iat": int(time.time()) - 3600, "exp": int(time.time()) + 60}, "'iat'"),
        ({"exp": int(time.time()) - 3600}, "'exp'"),
        ({"jti": None}, "'jti'"),
        ({"header": {"typ": "JWT"}}, "'typ'"),
        ({"key": "foreign"}, "bad signature"),
        ({"tamper": True}, "bad signature"),
    ]


def test_the_portal_refuses_a_logout_token_that_fails_a_check(portal, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    browser = Browser("en")
    log_in(browser, portal, outbox)
    foreign = RSAKey.generate_key(2048, private=True)
    for change, reason in bad_logout_tokens():
        change = dict(change)
        if change.get("key") == "foreign":
            change["key"] = foreign
        tamper = change.pop("tamper", False)
        token = logout_token(portal, **change)
        if tamper:  # another sid in the claims, the signature left as it was
            head, _body, signature = token.split(".")
            token = ".".join([head, logout_token(portal, sid="another").split(".")[1], signature])
        answer = requests.post(portal.url + "/backchannel-logout", data={"logout_token": token}, timeout=BOUND)
        assert answer.status_code == 400, change
        assert answer.json()["error"] == "invalid_request", change
        assert reason in answer.json()["error_description"], (change, answer.json())
    assert "Signed in to the Demo Portal" in text(browser.get(portal.url + "/"))


# --- the ID token checks ------------------------------------------------------------------------------


def id_token(portal: RunningPortal, *, key=None, kid=None, **claims) -> str:
    now = int(time.time())
    body = {"iss": portal.app.provider.issuer, "aud": portal.client_id, "sub": "s-1", "iat": now, "exp": now + 600,
            "nonce": "the-nonce", "auth_time": now, "acr": "urn:chave:loa:3", **claims}
    body = {k: v for k, v in body.items() if v is not None}
    row = keys.active_key("RS256")
    return jwt.encode({"alg": "RS256", "kid": kid or row.kid}, body, key or keys.private_key(row))


@pytest.mark.parametrize(("change", "reason"), [
    ({}, None),
    ({"nonce": "another-browser's"}, "'nonce'"),
    ({"nonce": None}, "'nonce'"),
    ({"aud": "chave-someone-else"}, "'aud'"),
    ({"aud": ["AUDIENCE", "chave-someone-else"]}, "'azp'"),
    ({"aud": ["AUDIENCE", "chave-someone-else"], "azp": "AUDIENCE"}, None),
    ({"iss": "https://idp.example"}, "'iss'"),
    ({"exp": int(time.time()) - 3600}, "'exp'"),
    ({"iat": int(time.time()) + 3600}, "'iat'"),
    ({"at_hash": "AAAAAAAAAAAAAAAAAAAAAA"}, "'at_hash'"),
    ({"key": "foreign", "kid": "unknown-kid"}, "key the provider does not publish"),
    ({"key": "foreign"}, "bad signature"),
])
def test_the_portal_refuses_an_id_token_that_fails_a_check(portal, change, reason):
    change = {k: ([portal.client_id if a == "AUDIENCE" else a for a in v] if isinstance(v, list)
                  else portal.client_id if v == "AUDIENCE" else v) for k, v in change.items()}
    if change.get("key") == "foreign":
        change["key"] = RSAKey.generate_key(2048, private=True)
    token = id_token(portal, **change)
    check = dict(client_id=portal.client_id, nonce="the-nonce", access_token="the-access-token")
    if reason is None:
        assert oidc.validate_id_token(portal.app.provider, token, **check)["sub"] == "s-1"
        return
    with pytest.raises(oidc.InvalidToken) as refused:
        oidc.validate_id_token(portal.app.provider, token, **check)
    assert reason in refused.value.reason


def test_a_rotated_chave_key_is_fetched_again(portal):
    portal.app.provider.keys()  # cached before the rotation
    keys.rotate(by="test")
    token = id_token(portal)
    assert oidc.validate_id_token(portal.app.provider, token, client_id=portal.client_id,
                                  nonce="the-nonce")["sub"] == "s-1"


# --- the portal's key and its languages -------------------------------------------------------------


def test_the_portal_publishes_only_the_public_half_of_a_key_it_makes_once(portal, tmp_path):
    published = requests.get(portal.url + "/jwks.json", timeout=BOUND).json()
    assert [k["kty"] for k in published["keys"]] == ["RSA"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(published["keys"][0])
    assert published["keys"][0]["kid"] == portal.app.key.kid

    first = oidc.PortalKey.load_or_create(tmp_path)
    assert stat.S_IMODE((tmp_path / oidc.PortalKey.FILE_NAME).stat().st_mode) == 0o600
    assert oidc.PortalKey.load_or_create(tmp_path).kid == first.kid  # a restart keeps the key


@pytest.mark.parametrize(("query", "cookie", "accept", "chosen"), [
    (None, None, "", "pt"),
    (None, None, "en-GB,en;q=0.9", "en"),
    (None, None, "fr-FR, en;q=0.5, pt;q=0.8", "pt"),
    (None, None, "fr-FR, de;q=0.5", "pt"),
    (None, None, "en;q=0, pt-BR", "pt"),
    (None, "en", "pt-PT", "en"),
    ("pt", "en", "en", "pt"),
    ("xx", None, "en", "en"),
])
def test_the_portal_speaks_the_language_asked_for(query, cookie, accept, chosen):
    assert demo.text.choose_language(query, cookie, accept) == chosen


def test_the_language_switch_is_remembered(portal):
    browser = Browser("pt-PT")
    switched = browser.get(portal.url + "/?lang=en")
    assert 'lang="en"' in switched.text and "Log in with Chave" in text(switched)
    assert 'href="/?lang=pt" lang="pt-PT" hreflang="pt-PT">Português</a>' in switched.text
    assert "Log in with Chave" in text(browser.get(portal.url + "/"))


def test_unknown_pages_and_methods_are_answered_plainly(portal):
    assert requests.get(portal.url + "/nowhere", timeout=BOUND).status_code == 404
    refused = requests.get(portal.url + "/backchannel-logout", timeout=BOUND)
    assert refused.status_code == 405 and refused.headers["Allow"] == "POST"
