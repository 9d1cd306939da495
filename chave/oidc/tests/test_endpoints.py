"""The endpoints of issue 14 item 8: token revocation (RFC 7009), token introspection (RFC 7662),
authorization server metadata (RFC 8414), pushed authorization requests (RFC 9126) and signed
request objects (RFC 9101), as portals and resource servers use them.
"""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from joserfc import jwt
from joserfc.jwk import RSAKey

from chave.oidc.models import Token

from .portal import query_of, register_portal
from .signin import redeem, refresh, tokens, userinfo, visit

pytestmark = pytest.mark.django_db(transaction=True)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def issuer() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


def authenticated(portal, path: str, **form) -> dict:
    """A form authenticated with a client assertion whose ``aud`` is the endpoint called (what
    Authlib's ``PrivateKeyJWT`` sends by default)."""
    return {**form, "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": portal.assertion(audience=issuer() + path)}


@pytest.fixture
def citizen(make_citizen):
    return make_citizen()


@pytest.fixture
def portal(db):
    return register_portal()


# --- Revocation (RFC 7009) ----------------------------------------------------------------------------


def revoke(client, portal, token, hint=None):
    form = authenticated(portal, "/oidc/revoke", token=token, **({"token_type_hint": hint} if hint else {}))
    return client.post("/oidc/revoke", form)


def test_revoking_an_access_token_ends_it_and_leaves_the_refresh_token(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    response = revoke(client, portal, body["access_token"], "access_token")
    assert response.status_code == 200 and response.json() == {}
    assert userinfo(client, body["access_token"]).status_code == 401
    assert refresh(client, portal, body["refresh_token"]).status_code == 200


def test_revoking_a_refresh_token_ends_the_whole_grant(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    renewed = refresh(client, portal, body["refresh_token"]).json()
    assert revoke(client, portal, renewed["refresh_token"]).status_code == 200
    assert userinfo(client, renewed["access_token"]).status_code == 401
    assert refresh(client, portal, renewed["refresh_token"]).json()["error"] == "invalid_grant"


def test_an_unknown_token_is_answered_200(client, portal):
    assert revoke(client, portal, "no-such-token").status_code == 200


def test_a_portal_cannot_revoke_another_portals_token(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    other = register_portal(name="Outro portal")
    response = revoke(client, other, body["access_token"])
    assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    assert userinfo(client, body["access_token"]).status_code == 200


def test_revocation_needs_the_client_to_authenticate(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    response = client.post("/oidc/revoke", {"token": body["access_token"], "client_id": portal.client_id})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    assert userinfo(client, body["access_token"]).status_code == 200


# --- Introspection (RFC 7662) -----------------------------------------------------------------------


def introspect(client, portal, token, **extra):
    return client.post("/oidc/introspect", authenticated(portal, "/oidc/introspect", token=token, **extra))


def test_a_resource_server_introspects_an_access_token(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    api = register_portal(name="API da Segurança Social", resource_server=True)
    answer = introspect(client, api, body["access_token"]).json()
    assert answer["active"] is True
    assert answer["client_id"] == portal.client_id and answer["sub"] == body["claims"]["sub"]
    assert answer["scope"] == body["scope"] and answer["token_type"] == "Bearer"
    assert answer["iss"] == issuer() and answer["exp"] > answer["iat"] and answer["acr"] == "urn:chave:loa:3"


def test_a_revoked_or_expired_token_is_inactive(client, outbox, citizen, portal, clock):
    api = register_portal(name="API", resource_server=True)
    body = tokens(client, outbox, portal)
    revoke(client, portal, body["access_token"])
    assert introspect(client, api, body["access_token"]).json() == {"active": False}
    second = tokens(client, outbox, portal)
    clock.travel(dt.timedelta(seconds=settings.CHAVE_POLICY["oidc_access_token_seconds"] + 1))
    assert introspect(client, api, second["access_token"]).json() == {"active": False}


def test_a_portal_that_is_no_resource_server_sees_only_its_own_tokens(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    other = register_portal(name="Outro portal")
    assert introspect(client, other, body["access_token"]).json() == {"active": False}
    assert introspect(client, portal, body["access_token"]).json()["active"] is True


def test_refresh_tokens_are_not_introspected(client, outbox, citizen, portal):
    api = register_portal(name="API", resource_server=True)
    body = tokens(client, outbox, portal)
    assert introspect(client, api, body["refresh_token"]).json() == {"active": False}


def test_introspection_needs_the_client_to_authenticate(client):
    response = client.post("/oidc/introspect", {"token": "x"})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


# --- Authorization server metadata (RFC 8414) -------------------------------------------------------


def test_the_oauth_authorization_server_metadata_matches_discovery(client):
    rfc8414 = client.get("/.well-known/oauth-authorization-server")
    oidc = client.get("/.well-known/openid-configuration")
    assert rfc8414.status_code == 200 and rfc8414.json() == oidc.json()
    body = rfc8414.json()
    assert body["issuer"] == issuer()
    assert body["revocation_endpoint"] == issuer() + "/oidc/revoke"
    assert body["introspection_endpoint"] == issuer() + "/oidc/introspect"
    assert body["pushed_authorization_request_endpoint"] == issuer() + "/oidc/par"
    assert body["request_parameter_supported"] is True


# --- Pushed authorization requests (RFC 9126) --------------------------------------------------------


def push(client, portal, **params):
    base = {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
            "scope": "openid profile", "state": portal.state, "code_challenge": portal.challenge,
            "code_challenge_method": "S256"}
    form = {k: v for k, v in {**base, **params}.items() if v is not None}
    return client.post("/oidc/par", authenticated(portal, "/oidc/par", **form))


def test_a_pushed_request_signs_the_citizen_in_by_reference(client, outbox, citizen, portal):
    response = push(client, portal)
    assert response.status_code == 201, response.content
    pushed = response.json()
    assert pushed["request_uri"].startswith("urn:ietf:params:oauth:request_uri:") and pushed["expires_in"] == 60
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request_uri": pushed["request_uri"],
                                          "scope": "openid email"})  # outside the pushed request: ignored
    trip = visit(client, outbox, portal, url=url)
    assert trip.callback["state"] == portal.state
    body = redeem(client, portal, trip.code).json()
    assert body["scope"] == "openid profile"
    # Used once: the same reference again is a page, not a second code.
    again = client.get(url)
    assert again.status_code == 400 and "already used" in again.content.decode()


def test_a_pushed_request_expires_if_not_used_in_time(client, portal, clock):
    request_uri = push(client, portal).json()["request_uri"]
    clock.travel(dt.timedelta(seconds=61))
    response = client.get("/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request_uri": request_uri}))
    assert response.status_code == 400 and "expired" in response.content.decode()


def test_a_pushed_request_in_use_by_one_browser_is_refused_to_another(client, portal):
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id,
                                          "request_uri": push(client, portal).json()["request_uri"]})
    assert client.get(url).status_code == 302  # to the login
    assert Client().get(url).status_code == 400
    assert client.get(url).status_code == 302  # the first browser still may


def test_a_pushed_request_of_another_client_is_refused(client, portal):
    request_uri = push(client, portal).json()["request_uri"]
    other = register_portal(name="Outro portal")
    response = client.get("/oidc/authorize?" + urlencode({"client_id": other.client_id, "request_uri": request_uri}))
    assert response.status_code == 400


def test_a_bad_pushed_request_is_refused_at_once(client, portal):
    response = push(client, portal, code_challenge=None, code_challenge_method=None)
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    response = push(client, portal, redirect_uri="https://evil.example/cb")
    assert response.status_code == 400
    response = client.post("/oidc/par", {"response_type": "code", "client_id": portal.client_id})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"


def test_a_portal_required_to_push_cannot_send_the_request_in_the_url(client, outbox, citizen):
    portal = register_portal(require_pushed_authorization_requests=True)
    response = client.get(portal.authorize_url())
    answer = query_of(response["Location"])
    assert answer["error"] == "invalid_request" and "push" in answer["error_description"]
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id,
                                          "request_uri": push(client, portal).json()["request_uri"]})
    assert visit(client, outbox, portal, url=url).code


# --- Signed request objects (RFC 9101) --------------------------------------------------------------


def request_object(portal, key=None, alg="RS256", **overrides) -> str:
    from chave import clock

    now = int(clock.now().timestamp())
    claims = {"iss": portal.client_id, "aud": issuer(), "client_id": portal.client_id, "iat": now, "nbf": now,
              "exp": now + 300, "response_type": "code", "redirect_uri": portal.redirect_uri,
              "scope": "openid profile", "state": portal.state, "code_challenge": portal.challenge,
              "code_challenge_method": "S256",
              "claims": {"id_token": {"acr": {"essential": True, "values": ["urn:chave:loa:3"]}}}, **overrides}
    key = key or portal.key
    return jwt.encode({"alg": alg, "kid": key.kid, "typ": "oauth-authz-req+jwt"},
                      {k: v for k, v in claims.items() if v is not None}, key, algorithms=[alg])


def test_a_signed_request_object_is_the_request(client, outbox, citizen, portal):
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request": request_object(portal),
                                          "scope": "openid email", "state": "from-the-url"})
    trip = visit(client, outbox, portal, url=url)
    assert trip.callback["state"] == portal.state  # the object's state, not the URL's
    body = redeem(client, portal, trip.code).json()
    assert body["scope"] == "openid profile"


@pytest.mark.parametrize("case", ["other_key", "expired", "too_long", "wrong_aud", "wrong_iss", "none_alg",
                                  "client_mismatch"])
def test_a_request_object_that_does_not_verify_gets_a_page(client, portal, case):
    from chave import clock

    now = int(clock.now().timestamp())
    stranger = RSAKey.generate_key(2048, private=True)
    stranger.ensure_kid()
    token = {
        "other_key": lambda: request_object(portal, key=stranger),
        "expired": lambda: request_object(portal, exp=now - 120),
        "too_long": lambda: request_object(portal, exp=now + 7200),
        "wrong_aud": lambda: request_object(portal, aud="https://elsewhere.example"),
        "wrong_iss": lambda: request_object(portal, iss="chave-someone-else"),
        "none_alg": lambda: jwt.encode({"alg": "none"}, {"iss": portal.client_id, "aud": issuer()}, None,
                                       algorithms=["none"]),
        "client_mismatch": lambda: request_object(portal, client_id="chave-someone-else"),
    }[case]()
    response = client.get("/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request": token}))
    assert response.status_code == 400 and not response.has_header("Location")
    assert "invalid_request_object" in response.content.decode()


def test_a_request_object_can_be_pushed(client, outbox, citizen, portal):
    response = client.post("/oidc/par", authenticated(portal, "/oidc/par", client_id=portal.client_id,
                                                      request=request_object(portal)))
    assert response.status_code == 201, response.content
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request_uri": response.json()["request_uri"]})
    body = redeem(client, portal, visit(client, outbox, portal, url=url).code).json()
    assert json.loads(json.dumps(body))["scope"] == "openid profile"
    assert Token.objects.filter(relying_party__client_id=portal.client_id).count() == 1
