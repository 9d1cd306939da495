"""Authlib's OAuth 2.0 client (``OAuth2Session`` over requests), with its default settings, signs a
citizen in at Chave served for real (``live_server``) and uses what it gets.

Nothing is tuned for Chave: the client assertion is Authlib's ``PrivateKeyJWT`` as it signs it (an
hour's lifetime, ``aud`` the endpoint it calls), no ``nonce`` (``OAuth2Session`` sends none), a
``state`` of Authlib's making, PKCE S256 from ``code_verifier``, the scope a framework would ask for
(with ``offline_access`` and ``address``, which Chave does not have and ignores). The ID token is
checked as Authlib's own OpenID client does (``CodeIDToken`` over the JWKS from discovery).
"""

from __future__ import annotations

import requests
import pytest
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.jwk import KeySet

from chave.oidc.models import ClientAssertion

from .portal import REDIRECT_URI, register_portal
from .test_client_library import BOUND, PHONE, PIN, follow

pytestmark = pytest.mark.django_db(transaction=True)


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
