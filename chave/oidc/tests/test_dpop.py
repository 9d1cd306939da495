"""DPoP (RFC 9449), issue 14 item 9: tokens bound to the portal's key at the token endpoint, with
nonces; proofs checked at userinfo, at refresh, at the signing APIs; bound tokens useless alone;
introspection says what a token is bound to; a portal may be required to use it."""

from __future__ import annotations

import base64
import datetime as dt
from urllib.parse import urlencode

import pytest
from django.conf import settings

from chave.oidc.models import Token

from .dpop_client import DpopKey
from .portal import register_portal
from .signin import visit

pytestmark = pytest.mark.django_db(transaction=True)


def issuer() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


@pytest.fixture
def citizen(make_citizen):
    return make_citizen()


@pytest.fixture
def portal(db):
    return register_portal()


def redeem(client, portal, code, key: DpopKey | None, **extra):
    form = portal.token_form(code, **extra)
    if key is None:
        return client.post("/oidc/token", form)
    return key.send(lambda proof: client.post("/oidc/token", {**form, "client_assertion": portal.assertion()},
                                              HTTP_DPOP=proof), "POST", issuer() + "/oidc/token")


def userinfo(client, access_token, key: DpopKey | None, scheme="DPoP"):
    def call(proof):
        headers = {"HTTP_AUTHORIZATION": f"{scheme} {access_token}"}
        if proof:
            headers["HTTP_DPOP"] = proof
        return client.get("/oidc/userinfo", **headers)

    if key is None:
        return call(None)
    return key.send(call, "GET", issuer() + "/oidc/userinfo", access_token)


def refresh(client, portal, refresh_token, key: DpopKey | None):
    def call(proof):
        form = {"grant_type": "refresh_token", "refresh_token": refresh_token,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": portal.assertion()}
        return client.post("/oidc/token", form, **({"HTTP_DPOP": proof} if proof else {}))

    return call(None) if key is None else key.send(call, "POST", issuer() + "/oidc/token")


def dpop_tokens(client, outbox, portal, key):
    response = redeem(client, portal, visit(client, outbox, portal).code, key)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_token_endpoint_asks_for_a_nonce_then_binds_the_tokens(client, outbox, citizen, portal):
    key = DpopKey()
    code = visit(client, outbox, portal).code
    first = client.post("/oidc/token", portal.token_form(code), HTTP_DPOP=key.proof("POST", issuer() + "/oidc/token"))
    assert first.status_code == 400 and first.json()["error"] == "use_dpop_nonce"
    assert first["DPoP-Nonce"]
    key.nonce = first["DPoP-Nonce"]
    second = client.post("/oidc/token", portal.token_form(code),
                         HTTP_DPOP=key.proof("POST", issuer() + "/oidc/token"))
    assert second.status_code == 200, second.content
    body = second.json()
    assert body["token_type"] == "DPoP" and second["DPoP-Nonce"]
    assert Token.objects.get().dpop_jkt == key.jkt


def test_a_bound_access_token_needs_a_proof_of_its_key_at_userinfo(client, outbox, citizen, portal):
    key = DpopKey()
    body = dpop_tokens(client, outbox, portal, key)
    assert userinfo(client, body["access_token"], key).json()["sub"]
    # Alone (stolen), as a bearer token, or with another key's proof: refused.
    assert userinfo(client, body["access_token"], None, scheme="Bearer").status_code == 401
    assert userinfo(client, body["access_token"], None).status_code == 401
    thief = DpopKey()
    refused = userinfo(client, body["access_token"], thief)
    assert refused.status_code == 401 and refused.json()["error"] == "invalid_dpop_proof"
    assert refused["WWW-Authenticate"].startswith('DPoP error="invalid_dpop_proof"')


@pytest.mark.parametrize("change", ["replayed", "wrong_htu", "wrong_htm", "old_iat", "wrong_ath", "no_nonce",
                                    "stale_nonce", "private_jwk", "hmac"])
def test_a_proof_that_does_not_hold_is_refused_at_userinfo(client, outbox, citizen, portal, clock, change,
                                                            settings):
    if change == "stale_nonce":  # nonce windows shorter than the access token's life
        settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_dpop_nonce_seconds": 60}
    key = DpopKey()
    body = dpop_tokens(client, outbox, portal, key)
    token = body["access_token"]
    url = issuer() + "/oidc/userinfo"
    if change == "replayed":
        proof = key.proof("GET", url, token)
        assert client.get("/oidc/userinfo", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof).status_code == 200
    elif change == "wrong_htu":
        proof = key.proof("GET", issuer() + "/oidc/token", token)
    elif change == "wrong_htm":
        proof = key.proof("POST", url, token)
    elif change == "old_iat":
        proof = key.proof("GET", url, token, iat=int(clock.now().timestamp()) - 3600)
    elif change == "wrong_ath":
        proof = key.proof("GET", url, "another-token")
    elif change == "no_nonce":
        proof = key.proof("GET", url, token, nonce=None)
    elif change == "stale_nonce":
        clock.travel(dt.timedelta(seconds=2 * settings.CHAVE_POLICY["oidc_dpop_nonce_seconds"] + 1))
        proof = key.proof("GET", url, token)
    elif change == "private_jwk":
        from joserfc import jwt

        header = {"typ": "dpop+jwt", "alg": "ES256", "jwk": key.key.as_dict(private=True)}
        proof = jwt.encode(header, {"jti": "x", "htm": "GET", "htu": url, "iat": int(clock.now().timestamp()),
                                    "nonce": key.nonce}, key.key)
    else:
        head = base64.urlsafe_b64encode(b'{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}')
        proof = head.rstrip(b"=").decode() + ".e30.c2ln"
    response = client.get("/oidc/userinfo", HTTP_AUTHORIZATION=f"DPoP {token}", HTTP_DPOP=proof)
    assert response.status_code == 401, (change, response.content)
    expected = "use_dpop_nonce" if change in ("no_nonce", "stale_nonce") else "invalid_dpop_proof"
    assert response.json()["error"] == expected
    if expected == "use_dpop_nonce":
        assert response["DPoP-Nonce"]


def test_a_bound_refresh_token_needs_a_proof_of_its_key(client, outbox, citizen, portal):
    key = DpopKey()
    body = dpop_tokens(client, outbox, portal, key)
    alone = refresh(client, portal, body["refresh_token"], None)
    assert alone.status_code == 400 and alone.json()["error"] == "invalid_grant"
    assert "DPoP" in alone.json()["error_description"]
    assert refresh(client, portal, body["refresh_token"], DpopKey()).json()["error"] == "invalid_grant"
    renewed = refresh(client, portal, body["refresh_token"], key)
    assert renewed.status_code == 200 and renewed.json()["token_type"] == "DPoP"


def test_introspection_says_what_the_token_is_bound_to(client, outbox, citizen, portal):
    key = DpopKey()
    body = dpop_tokens(client, outbox, portal, key)
    api = register_portal(name="API", resource_server=True)
    form = {"token": body["access_token"], "client_assertion_type":
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": api.assertion(audience=issuer() + "/oidc/introspect")}
    answer = client.post("/oidc/introspect", form).json()
    assert answer["active"] is True and answer["token_type"] == "DPoP" and answer["cnf"] == {"jkt": key.jkt}


def test_a_portal_required_to_use_dpop_gets_no_bearer_tokens(client, outbox, citizen):
    portal = register_portal(require_dpop=True)
    code = visit(client, outbox, portal).code
    refused = redeem(client, portal, code, None)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_request"
    assert "DPoP" in refused.json()["error_description"]
    assert redeem(client, portal, code, DpopKey()).json()["token_type"] == "DPoP"


def test_a_code_pushed_with_a_proof_is_bound_to_that_key(client, outbox, citizen, portal):
    key = DpopKey()
    form = {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
            "scope": "openid", "code_challenge": portal.challenge, "code_challenge_method": "S256",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    pushed = key.send(lambda proof: client.post("/oidc/par", {
        **form, "client_assertion": portal.assertion(audience=issuer() + "/oidc/par")}, HTTP_DPOP=proof),
        "POST", issuer() + "/oidc/par")
    assert pushed.status_code == 201, pushed.content
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request_uri": pushed.json()["request_uri"]})
    code = visit(client, outbox, portal, url=url).code
    stolen = redeem(client, portal, code, DpopKey())
    assert stolen.status_code == 400 and stolen.json()["error"] == "invalid_grant"
    assert redeem(client, portal, code, key).status_code == 200


def test_the_dpop_jkt_parameter_binds_the_code(client, outbox, citizen, portal):
    key = DpopKey()
    code = visit(client, outbox, portal, dpop_jkt=key.jkt).code
    assert redeem(client, portal, code, None).json()["error"] == "invalid_grant"
    assert redeem(client, portal, code, key).status_code == 200


def test_the_signing_apis_take_dpop_bound_service_tokens(client, portal):
    key = DpopKey()
    form = {"grant_type": "client_credentials", "scope": "csc",
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    issued = key.send(lambda proof: client.post("/oidc/token", {**form, "client_assertion": portal.assertion()},
                                                HTTP_DPOP=proof), "POST", issuer() + "/oidc/token")
    assert issued.json()["token_type"] == "DPoP"
    token = issued.json()["access_token"]
    url = issuer() + "/csc/v2/credentials/list"

    def call(scheme, proof=None):
        headers = {"HTTP_AUTHORIZATION": f"{scheme} {token}", **({"HTTP_DPOP": proof} if proof else {})}
        return client.post("/csc/v2/credentials/list", {"userID": "nobody"}, content_type="application/json",
                           **headers)

    # As at the token endpoint and userinfo: the server's nonce is asked for, given, and then accepted.
    assert key.nonce  # the token endpoint gave one
    listed = key.send(lambda proof: call("DPoP", proof), "POST", url, token)
    assert listed.status_code == 200 and listed["DPoP-Nonce"] == key.nonce
    without = call("DPoP", key.proof("POST", url, token, nonce=None))
    assert without.status_code == 401 and without["DPoP-Nonce"]
    assert 'DPoP error="use_dpop_nonce"' in without["WWW-Authenticate"]
    assert without.json()["error"] == "use_dpop_nonce"
    stale = call("DPoP", key.proof("POST", url, token, nonce="not-a-nonce-of-chave"))
    assert stale.status_code == 401 and stale.json()["error"] == "use_dpop_nonce"
    assert call("Bearer").status_code == 401
    other = call("DPoP", DpopKey().proof("POST", url, token, nonce=key.nonce))
    assert other.status_code == 401 and other.json()["error"] == "invalid_dpop_proof"
    assert 'DPoP error="invalid_dpop_proof"' in other["WWW-Authenticate"]
    assert call("DPoP").status_code == 401
    # A client that keeps the nonce from the last answer needs no round trip.
    assert call("DPoP", key.proof("POST", url, token)).status_code == 200


def test_the_signing_apis_accept_proofs_without_a_nonce_when_nonces_are_off(client, portal, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_dpop_nonce": False}
    key = DpopKey()
    form = {"grant_type": "client_credentials", "scope": "csc", "client_assertion": portal.assertion(),
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}
    token = client.post("/oidc/token", form, HTTP_DPOP=key.proof("POST", issuer() + "/oidc/token")).json()[
        "access_token"]
    listed = client.post("/csc/v2/credentials/list", {"userID": "nobody"}, content_type="application/json",
                         HTTP_AUTHORIZATION=f"DPoP {token}",
                         HTTP_DPOP=key.proof("POST", issuer() + "/csc/v2/credentials/list", token))
    assert listed.status_code == 200 and not listed.has_header("DPoP-Nonce")


def test_discovery_advertises_dpop(client):
    assert client.get("/.well-known/openid-configuration").json()["dpop_signing_alg_values_supported"] == [
        "ES256", "PS256", "RS256"]
