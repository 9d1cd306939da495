"""Authlib's OAuth 2.0 client (``OAuth2Session`` over requests), with its default settings, signs a
citizen in at Chave served for real (``live_server``) and uses what it gets.

Nothing is tuned for Chave: the client assertion is Authlib's ``PrivateKeyJWT`` as it signs it (an
hour's lifetime, ``aud`` the endpoint it calls), no ``nonce`` (``OAuth2Session`` sends none), a
``state`` of Authlib's making, PKCE S256 from ``code_verifier``, the scope a framework would ask for
(with ``address``, which Chave does not have and ignores). The ID token is checked as Authlib's own
OpenID client does (``CodeIDToken`` over the JWKS from discovery).

Authlib has no pushed-request or DPoP support of its own; the whole-flow test adds them the way an
integrator would: the pushed request is a POST with the session's own client authentication, and
DPoP proofs come from a ``requests`` auth hook signing with ``joserfc`` (Authlib's JOSE library).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from chave.oidc.models import ClientAssertion

from .portal import REDIRECT_URI, register_ec_portal, register_portal
from .test_client_library import BOUND, PHONE, PIN, follow
from .test_logout import Receiver

pytestmark = pytest.mark.django_db(transaction=True)
AFTER_LOGOUT = "https://portal.example.gov.pt/signed-out"


def test_authlib_with_its_defaults_signs_a_citizen_in_and_refreshes(live_server, settings, make_citizen, outbox):
    settings.CHAVE_PUBLIC_URL = live_server.url
    make_citizen(phone=PHONE, pin=PIN)
    portal = register_portal()
    metadata = requests.get(live_server.url + "/.well-known/openid-configuration", timeout=BOUND).json()

    session = OAuth2Session(portal.client_id, portal.key, scope="openid profile pt:identity address offline_access",
                            redirect_uri=REDIRECT_URI, code_challenge_method="S256",
                            token_endpoint_auth_method=PrivateKeyJWT())
    verifier = generate_token(48)
    url, state = session.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier)
    assert "nonce=" not in url

    browser = requests.Session()
    callback = follow(browser, browser.get(url, allow_redirects=False, timeout=BOUND), outbox,
                      share=["NomeProprio", "NomeApelido", "NomeCompleto", "NIC"])

    token = session.fetch_token(metadata["token_endpoint"], authorization_response=callback, state=state,
                                code_verifier=verifier, timeout=BOUND)
    assert ClientAssertion.objects.filter(relying_party__client_id=portal.client_id).exists()
    assert token["scope"] == "openid profile pt:identity offline_access"  # "address" ignored
    assert token["refresh_token"]

    # The ID token, as Authlib's OpenID client checks it.
    jwks = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=BOUND).json())
    decoded = jwt.decode(token["id_token"], jwks)
    claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [metadata["issuer"]]}},
                         {"client_id": portal.client_id, "access_token": token["access_token"]})
    claims.validate(leeway=120)
    assert "nonce" not in claims

    info = session.get(metadata["userinfo_endpoint"], timeout=BOUND).json()
    assert info["sub"] == claims["sub"] and info["given_name"] == "Maria"

    renewed = session.refresh_token(metadata["token_endpoint"], timeout=BOUND)
    assert renewed["access_token"] != token["access_token"] and renewed["refresh_token"] != token["refresh_token"]
    refreshed = jwt.decode(renewed["id_token"], jwks).claims
    assert refreshed["sub"] == claims["sub"] and refreshed["auth_time"] == claims["auth_time"]
    assert session.get(metadata["userinfo_endpoint"], timeout=BOUND).json()["sub"] == claims["sub"]


class DPoP(requests.auth.AuthBase):
    """The integrator's DPoP (RFC 9449) for requests: a proof per request, signed with the
    portal's DPoP key, the ``ath`` of the access token it carries, and the server's nonce (the
    ``use_dpop_nonce`` answer is retried once with it)."""

    def __init__(self):
        self.key = ECKey.generate_key("P-256", private=True)
        self.nonce = None

    def proof(self, method: str, url: str, access_token: str | None = None) -> str:
        claims = {"jti": secrets.token_urlsafe(16), "htm": method, "htu": url.split("?")[0], "iat": int(time.time())}
        if self.nonce:
            claims["nonce"] = self.nonce
        if access_token:
            claims["ath"] = base64.urlsafe_b64encode(hashlib.sha256(access_token.encode()).digest()).rstrip(
                b"=").decode()
        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": self.key.as_dict(private=False)}
        return jwt.encode(header, claims, self.key)

    def __call__(self, request):
        access_token = None
        authorization = request.headers.get("Authorization", "")
        if authorization.startswith(("Bearer ", "DPoP ")):
            access_token = authorization.split(" ", 1)[1]
            request.headers["Authorization"] = "DPoP " + access_token
        request.headers["DPoP"] = self.proof(request.method, request.url, access_token)
        request.register_hook("response", self.retry_with_nonce)
        return request

    def retry_with_nonce(self, response, **kwargs):
        if response.headers.get("DPoP-Nonce"):
            self.nonce = response.headers["DPoP-Nonce"]
        challenge = response.headers.get("WWW-Authenticate", "") + (response.text if response.status_code == 400 else "")
        if response.status_code in (400, 401) and "use_dpop_nonce" in challenge and not getattr(
                response.request, "retried", False):
            again = response.request.copy()
            again.retried = True
            access_token = again.headers["Authorization"].split(" ", 1)[1] if again.headers.get(
                "Authorization", "").startswith("DPoP ") else None
            again.headers["DPoP"] = self.proof(again.method, again.url, access_token)
            retried = response.connection.send(again, **kwargs)
            retried.history.append(response)
            if retried.headers.get("DPoP-Nonce"):
                self.nonce = retried.headers["DPoP-Nonce"]
            return retried
        return response


class Both(requests.auth.AuthBase):
    """Authlib's client authentication, then the DPoP proof (over the final body and headers)."""

    def __init__(self, *auths):
        self.auths = auths

    def __call__(self, request):
        for auth in self.auths:
            request = auth(request)
        return request


def test_authlib_runs_the_whole_fapi2_flow(live_server, settings, make_citizen, outbox, run_worker):
    """discovery → PAR → authorize → PIN → code → token (private_key_jwt ES256, DPoP) → ID token →
    userinfo → refresh → introspect → revoke → RP-initiated logout, and the other portal's
    back-channel logout token verified."""
    settings.CHAVE_PUBLIC_URL = live_server.url
    receiver = Receiver()
    receiver.thread.start()
    try:
        make_citizen(phone=PHONE, pin=PIN)
        first, first_key = register_ec_portal("Portal das Finanças", REDIRECT_URI, profile="fapi2", offline_access=True,
                                    post_logout_redirect_uris=[AFTER_LOGOUT])
        other_uri = "https://saude.example.gov.pt/cb"
        second, second_key = register_ec_portal("Portal da Saúde", other_uri, backchannel_logout_uri=receiver.url("/saude/logout"))
        api, api_key = register_ec_portal("API da Saúde", "https://api.example.gov.pt/cb", resource_server=True)
        metadata = requests.get(live_server.url + "/.well-known/oauth-authorization-server", timeout=BOUND).json()
        dpop = DPoP()
        assertion = PrivateKeyJWT(alg="ES256")
        session = OAuth2Session(first.client_id, first_key, scope="openid profile offline_access",
                                redirect_uri=REDIRECT_URI, code_challenge_method="S256",
                                token_endpoint_auth_method=assertion, revocation_endpoint_auth_method=assertion)
        client_auth = session.client_auth(assertion)

        # PAR: the authorization request's parameters, pushed with Authlib's client authentication.
        verifier = generate_token(48)
        url, state = session.create_authorization_url(metadata["authorization_endpoint"], code_verifier=verifier)
        parameters = dict(parse_qsl(urlsplit(url).query))
        pushed = session.post(metadata["pushed_authorization_request_endpoint"], data=parameters,
                              auth=Both(client_auth, dpop), withhold_token=True, timeout=BOUND)
        assert pushed.status_code == 201, pushed.text
        authorize = metadata["authorization_endpoint"] + "?" + urlencode(
            {"client_id": first.client_id, "request_uri": pushed.json()["request_uri"]})

        browser = requests.Session()
        callback = follow(browser, browser.get(authorize, allow_redirects=False, timeout=BOUND), outbox,
                          share=["NomeProprio", "NomeApelido", "NomeCompleto", "NIC"])
        token = session.fetch_token(metadata["token_endpoint"], authorization_response=callback, state=state,
                                    code_verifier=verifier, auth=Both(client_auth, dpop), timeout=BOUND)
        assert token["token_type"] == "DPoP"
        jwks = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=BOUND).json())
        decoded = jwt.decode(token["id_token"], jwks)
        claims = CodeIDToken(decoded.claims, decoded.header, {"iss": {"values": [metadata["issuer"]]}},
                             {"client_id": first.client_id, "access_token": token["access_token"]})
        claims.validate(leeway=120)

        userinfo = live_server.url + "/oidc/userinfo"
        # Authlib's token auth knows Bearer only: the DPoP scheme is the integrator's header.
        info = requests.get(userinfo, headers={"Authorization": "DPoP " + token["access_token"]}, auth=dpop,
                            timeout=BOUND)
        assert info.json()["sub"] == claims["sub"]
        renewed = session.refresh_token(metadata["token_endpoint"], auth=Both(client_auth, dpop), timeout=BOUND)
        assert renewed["token_type"] == "DPoP"
        assert jwt.decode(renewed["id_token"], jwks).claims["sub"] == claims["sub"]

        # A resource server introspects; the portal revokes; the token is dead everywhere.
        resource_server = OAuth2Session(api.client_id, api_key, token_endpoint_auth_method=assertion)
        introspect = resource_server.client_auth(assertion)
        seen = resource_server.introspect_token(metadata["introspection_endpoint"], token=renewed["access_token"],
                                                auth=introspect, timeout=BOUND).json()
        assert seen["active"] is True and seen["cnf"]["jkt"] == dpop.key.thumbprint()
        revoked = session.revoke_token(metadata["revocation_endpoint"], token=renewed["refresh_token"],
                                       token_type_hint="refresh_token", timeout=BOUND)
        assert revoked.status_code == 200
        assert resource_server.introspect_token(metadata["introspection_endpoint"], token=renewed["access_token"],
                                                auth=introspect, timeout=BOUND).json() == {"active": False}

        # Another portal in the same browser (single sign-on), then the first one logs out.
        other = OAuth2Session(second.client_id, second_key, scope="openid", redirect_uri=other_uri,
                              code_challenge_method="S256")
        other_url, _state = other.create_authorization_url(metadata["authorization_endpoint"],
                                                           code_verifier=generate_token(48))
        follow(browser, browser.get(other_url, allow_redirects=False, timeout=BOUND), outbox, share=[],
               redirect_uri=other_uri)
        logout = browser.get(metadata["end_session_endpoint"], params={
            "id_token_hint": token["id_token"], "post_logout_redirect_uri": AFTER_LOGOUT, "state": "bye"},
            allow_redirects=False, timeout=BOUND)
        assert logout.status_code == 302 and logout.headers["Location"] == AFTER_LOGOUT + "?state=bye"
        run_worker()
        [received] = receiver.received("/saude/logout")
        logout_token = jwt.decode(received.logout_token, jwks)
        assert logout_token.header["typ"] == "logout+jwt" and "nonce" not in logout_token.claims
        assert logout_token.claims["aud"] == second.client_id and logout_token.claims["sid"] == claims["sid"]
        assert "http://schemas.openid.net/event/backchannel-logout" in logout_token.claims["events"]
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
