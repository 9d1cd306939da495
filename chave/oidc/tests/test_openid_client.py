"""openid-client (the OpenID-certified Node library, ``clients/openid-client``, installed from the
npm registry with its lockfile by ``make test``) plays two FAPI 2.0 portals against Chave served
for real, with its default settings: discovery → pushed authorization request → authorize → PIN
→ code → token with ``private_key_jwt`` (ES256) and DPoP (nonces handled by the library) → ID
token → userinfo → refresh → introspection by a resource server → revocation → RP-initiated
logout, and the other portal's back-channel logout token verified by the library's JOSE (``jose``).

The portals run in Debian's Node (``node``) and speak JSON lines with the test
(``clients/openid-client/portal.mjs``); the citizen's browser is ``requests`` through the real
pages. The one non-default setting is ``allowInsecureRequests``: Chave is served over http:// on
127.0.0.1 here.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests
from django.conf import settings

from .portal import register_ec_portal
from .test_client_library import BOUND, PHONE, PIN, follow
from .test_logout import Receiver

pytestmark = pytest.mark.django_db(transaction=True)

CLIENT_DIR = Path(settings.BASE_DIR).parent / "clients" / "openid-client"
AFTER_LOGOUT = "https://portal.example.gov.pt/signed-out"


class NodePortal:
    """One portal process: :meth:`call` sends a command and returns the library's answer."""

    def __init__(self):
        node = shutil.which("node")
        assert node, "Debian's nodejs is needed (scripts/system-deps.sh installs it)"
        assert (CLIENT_DIR / "node_modules" / "openid-client").is_dir(), \
            "openid-client is not installed: `make clients` (part of `make test`) installs it from the lockfile"
        self.process = subprocess.Popen([node, str(CLIENT_DIR / "portal.mjs")], cwd=CLIENT_DIR, text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def call(self, command: str, **arguments) -> dict:
        self.process.stdin.write(json.dumps({"command": command, **arguments}) + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        assert line, self.process.stderr.read()
        return json.loads(line)

    def close(self):
        self.process.stdin.close()
        try:
            self.process.wait(timeout=BOUND)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def node_portals():
    started = []

    def start():
        started.append(NodePortal())
        return started[-1]

    yield start
    for portal in started:
        portal.close()


@pytest.fixture
def receiver():
    server = Receiver()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


def sign_in(node, browser, outbox, party, jwk, redirect_uri, issuer):
    assert node.call("discover", issuer=issuer, client_id=party.client_id, jwk=jwk)["par"] == issuer + "/oidc/par"
    url = node.call("authorize", redirect_uri=redirect_uri, scope="openid profile pt:identity offline_access")
    assert "request_uri=" in url["url"] and "nonce" not in url["url"], url
    callback = follow(browser, browser.get(url["url"], allow_redirects=False, timeout=BOUND), outbox,
                      share=["NomeProprio", "NomeApelido", "NomeCompleto", "NIC"], redirect_uri=redirect_uri)
    return node.call("callback", url=callback)


def test_openid_client_with_its_defaults_runs_the_whole_fapi2_flow(
        live_server, settings, make_citizen, outbox, receiver, run_worker, node_portals):
    settings.CHAVE_PUBLIC_URL = live_server.url
    issuer = live_server.url
    make_citizen(phone=PHONE, pin=PIN)
    first_uri, second_uri = "https://portal.example.gov.pt/cb", "https://saude.example.gov.pt/cb"
    first, first_key = register("Portal das Finanças", first_uri, profile="fapi2", offline_access=True,
                                post_logout_redirect_uris=[AFTER_LOGOUT])
    second, second_key = register("Portal da Saúde", second_uri, profile="fapi2",
                                  backchannel_logout_uri=receiver.url("/saude/backchannel-logout"))
    api, api_key = register("API da Saúde", "https://api.example.gov.pt/cb", resource_server=True)
    browser = requests.Session()
    browser.headers["Accept-Language"] = "en"
    portal, other = node_portals(), node_portals()

    # Discovery → PAR → authorize → PIN → code → token (private_key_jwt ES256, DPoP) → ID token.
    answer = sign_in(portal, browser, outbox, first, first_key, first_uri, issuer)
    assert "error" not in answer, answer
    assert answer["token_type"].lower() == "dpop" and answer["refresh"] is True
    claims = answer["claims"]
    assert claims["iss"] == issuer and claims["aud"] == first.client_id and "nonce" not in claims
    assert claims["acr"] == "urn:chave:loa:3"

    info = portal.call("userinfo")
    assert info.get("sub") == claims["sub"] and info["given_name"] == "Maria", info

    renewed = portal.call("refresh")
    assert renewed.get("same_sub") is True and renewed["token_type"].lower() == "dpop", renewed
    assert renewed["claims"]["auth_time"] == claims["auth_time"]

    introspected = portal.call("introspect", issuer=issuer, client_id=api.client_id, jwk=api_key)
    assert introspected.get("active") is True and introspected["client_id"] == first.client_id, introspected
    assert introspected["cnf"]["jkt"]  # bound to the portal's DPoP key

    assert portal.call("revoke", which="access") == {"revoked": "access"}
    token = portal.call("access_token")["access_token"]
    assert portal.call("introspect", issuer=issuer, client_id=api.client_id, jwk=api_key, token=token) == {
        "active": False}

    # The second portal, same browser: single sign-on (consent only), then the first one logs out.
    assert "error" not in sign_in(other, browser, outbox, second, second_key, second_uri, issuer)
    logout = portal.call("logout_url", post_logout_redirect_uri=AFTER_LOGOUT, state="bye")
    response = browser.get(logout["url"], allow_redirects=False, timeout=BOUND)
    assert response.status_code == 302 and response.headers["Location"] == AFTER_LOGOUT + "?state=bye"

    run_worker()
    [received] = receiver.received("/saude/backchannel-logout")
    verified = other.call("verify_logout_token", logout_token=received.logout_token)
    assert verified.get("alg") == "ES256" and verified["sid"] == claims["sid"], verified


def register(name: str, redirect_uri: str, **extra):
    """A portal registered for openid-client: the party and its private JWK (with its ``kid``)."""
    party, key = register_ec_portal(name, redirect_uri, **extra)
    return party, {**key.as_dict(private=True), "kid": key.kid}
