"""An independently written OpenID Connect client library, pyoidc (the ``oic`` package), performs
the whole flow against Chave served for real (``live_server``), driven through the real pages.

The library does the protocol: discovery (``Client.provider_config``, which also loads Chave's
JWKS), the authorization request, PKCE with S256 (``Client.add_code_challenge``), parsing the
callback, the token request authenticated with ``private_key_jwt`` (an assertion the library
signs with a key made by ``joserfc`` and registered at Chave), validating the ID token against
Chave's JWKS (signature, ``iss``, ``aud``, ``exp``, ``iat``: ``AccessTokenResponse.verify``; the
``nonce``: ``Client.verify_id_token``), and userinfo. The browser in between is ``requests``
following Chave's redirects: identifier and PIN, the code read from the development outbox,
consent.

How pyoidc 1.7 is driven, from its source:

- ``do_authorization_request`` calls ``add_code_challenge`` but drops the verifier ("TODO store
  code_verifier"), so the test calls ``add_code_challenge`` itself, puts the challenge in the
  request and the verifier in the token request's arguments;
- the assertion's lifetime defaults to 600 s, beyond what Chave accepts
  (``oidc_client_assertion_max_seconds``): the ``lifetime`` keyword is passed through
  ``do_access_token_request`` to ``PrivateKeyJWT.construct``;
- ``state2nonce`` is filled only by ``request_info``, so the nonce is checked with
  ``Client.verify_id_token(id_token, authorization_request)``.
"""

from __future__ import annotations

import base64
import json
import re
from urllib.parse import urlsplit

import pytest
import requests
from jwkest import BadSignature
from oic import rndstr
from oic.oic import Client
from oic.oic.message import (
    AccessTokenResponse,
    AuthorizationResponse,
    OpenIDSchema,
    RegistrationResponse,
)
from oic.utils.authn.client import CLIENT_AUTHN_METHOD
from oic.utils.keyio import KeyBundle

from chave import policy
from chave.federation.attributes import PREFIX
from chave.federation.models import RelyingParty
from chave.oidc.models import ClientAssertion

from .portal import REDIRECT_URI, register_portal

pytestmark = pytest.mark.django_db(transaction=True)

PHONE = "+351912345678"
PIN = "4719"
BOUND = 30


def submit(browser: requests.Session, page, fields: dict):
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    assert token, f"no form at {page.url}"
    return browser.post(page.url, {"csrfmiddlewaretoken": token.group(1), **fields}, allow_redirects=False,
                        timeout=BOUND)


def follow(browser: requests.Session, response, outbox, *, share: list[str], redirect_uri: str = REDIRECT_URI):
    """The citizen's browser from the authorization request to the portal's callback URL: each
    redirect followed, the login and consent pages answered as they come."""
    for _ in range(12):
        if response.is_redirect:
            location = requests.compat.urljoin(response.url, response.headers["Location"])
            if location.startswith(redirect_uri):
                return location  # the portal's callback: the library takes it from here
            response = browser.get(location, allow_redirects=False, timeout=BOUND)
            continue
        assert response.status_code == 200, (response.url, response.status_code, response.text[:2000])
        path = urlsplit(response.url).path
        if path == "/login/":
            response = submit(browser, response, {"identifier": PHONE, "pin": PIN})
        elif path == "/login/code/":
            response = submit(browser, response, {"code": outbox.last_code(PHONE)})
        elif path == "/oidc/consent":
            offered = re.findall(r'name="attribute" value="([^"]+)"', response.text)
            response = submit(browser, response, {"decision": "allow",
                                                  "attribute": [a for a in offered if a in share]})
        else:
            raise AssertionError(f"unexpected page {response.url}")
    raise AssertionError("too many steps")


def test_pyoidc_logs_a_citizen_in_with_pkce_and_private_key_jwt(live_server, settings, make_citizen, outbox):
    settings.CHAVE_PUBLIC_URL = live_server.url  # the issuer is the address Chave is served at
    key = make_citizen(phone=PHONE, pin=PIN)
    portal = register_portal()  # private_key_jwt, its public key (made by joserfc) registered inline
    party = RelyingParty.objects.get(client_id=portal.client_id)

    client = Client(client_id=portal.client_id, client_authn_method=CLIENT_AUTHN_METHOD)
    client.store_registration_info(RegistrationResponse(
        client_id=portal.client_id, redirect_uris=[REDIRECT_URI], token_endpoint_auth_method="private_key_jwt"))
    # The portal's private key, as joserfc made it, into the library's key jar.
    client.keyjar.add_kb("", KeyBundle([portal.key.as_dict(private=True)]))

    # Discovery, and with it Chave's JWKS.
    provider = client.provider_config(live_server.url)
    assert provider["issuer"] == live_server.url
    assert client.keyjar.get_issuer_keys(live_server.url), "the library did not load Chave's JWKS"

    # The authorization request: state, nonce and PKCE S256.
    pkce, verifier = client.add_code_challenge()
    assert pkce["code_challenge_method"] == "S256"
    state, nonce = rndstr(32), rndstr(32)
    authorization = client.construct_AuthorizationRequest(request_args={
        "response_type": "code", "scope": "openid profile pt:identity", "state": state, "nonce": nonce,
        "redirect_uri": REDIRECT_URI, **pkce})
    url = authorization.request(client.authorization_endpoint)

    browser = requests.Session()
    browser.headers["Accept-Language"] = "en"
    callback = follow(browser, browser.get(url, allow_redirects=False, timeout=BOUND), outbox,
                      share=["NomeProprio", "NomeApelido", "NIC"])

    answer = client.parse_response(AuthorizationResponse, info=callback, sformat="urlencoded")
    assert answer["state"] == state and "code" in answer

    # The token request: the code, the PKCE verifier, and a private_key_jwt assertion.
    tokens = client.do_access_token_request(
        state=state, request_args={"code": answer["code"], "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
        authn_method="private_key_jwt", lifetime=policy.get("oidc_client_assertion_max_seconds") // 5)
    assert "error" not in tokens, tokens.to_dict()
    assert ClientAssertion.objects.filter(relying_party=party).count() == 1  # the assertion was checked and kept
    id_token = tokens["id_token"]  # verified by the library against Chave's JWKS
    client.verify_id_token(id_token, authorization)  # nonce (and the rest again)
    assert id_token["iss"] == live_server.url and id_token["aud"] == [portal.client_id]
    assert id_token["nonce"] == nonce
    assert id_token["acr"] == "urn:chave:loa:3" and "sms" in id_token["amr"]
    assert isinstance(id_token["auth_time"], int)
    assert id_token.jws_header["alg"] == "RS256" and id_token.jws_header["kid"]

    info = client.do_user_info_request(state=state, method="GET")
    assert isinstance(info, OpenIDSchema), info
    assert info["sub"] == id_token["sub"]
    assert info["name"] == "Maria Teste Silva"
    assert info["given_name"] == "Maria" and info["family_name"] == "Silva"
    assert info[PREFIX + "NIC"] == key.citizen.doc_number
    assert "birthdate" not in info.to_dict()  # refused at consent
    assert info[PREFIX + "AttributeStatus"]["DataNascimento"] == "withheld"


def test_pyoidc_refuses_an_id_token_changed_after_chave_signed_it(live_server, settings, make_citizen, outbox):
    """The library's own check, against the JWKS it loaded at discovery, catches a forged ID token."""
    settings.CHAVE_PUBLIC_URL = live_server.url
    make_citizen(phone=PHONE, pin=PIN)
    portal = register_portal()
    client = Client(client_id=portal.client_id, client_authn_method=CLIENT_AUTHN_METHOD)
    client.keyjar.add_kb("", KeyBundle([portal.key.as_dict(private=True)]))
    client.provider_config(live_server.url)
    pkce, verifier = client.add_code_challenge()
    state = rndstr(32)
    url = client.construct_AuthorizationRequest(request_args={
        "response_type": "code", "scope": "openid", "state": state, "nonce": rndstr(32), "redirect_uri": REDIRECT_URI,
        **pkce}).request(client.authorization_endpoint)
    browser = requests.Session()
    callback = follow(browser, browser.get(url, allow_redirects=False, timeout=BOUND), outbox, share=[])
    answer = client.parse_response(AuthorizationResponse, info=callback, sformat="urlencoded")
    tokens = client.do_access_token_request(
        state=state, request_args={"code": answer["code"], "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
        authn_method="private_key_jwt", lifetime=60)

    head, body, signature = tokens["id_token_jwt"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    response = AccessTokenResponse(access_token=tokens["access_token"], token_type="Bearer",
                                   id_token=f"{head}.{forged}.{signature}")
    with pytest.raises(BadSignature):
        response.verify(keyjar=client.keyjar, iss=live_server.url, client_id=portal.client_id)
    # The token as Chave signed it passes the same check.
    assert AccessTokenResponse(access_token=tokens["access_token"], token_type="Bearer",
                               id_token=tokens["id_token_jwt"]).verify(
        keyjar=client.keyjar, iss=live_server.url, client_id=portal.client_id)
