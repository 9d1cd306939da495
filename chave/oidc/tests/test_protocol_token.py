"""The token endpoint as a portal (or someone holding a stolen code or assertion) sees it."""

import base64
import datetime as dt
import secrets

import pytest
from django.test import Client
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from chave.federation import services as federation
from chave.federation.models import RelyingParty
from chave.throttle.tests.parallel import run_together

from .portal import register_portal
from .signin import claims_of, redeem, refresh, userinfo, visit

pytestmark = pytest.mark.django_db(transaction=True)  # the delivery worker runs in most
no_login = pytest.mark.django_db  # ... but not in these


@pytest.fixture
def portal(db):
    return register_portal()


@pytest.fixture
def citizen(make_citizen):
    return make_citizen()


def code_for(client, outbox, portal, **params):
    return visit(client, outbox, portal, scope="openid profile offline_access", **params).code


def refused(response, error, status=400):
    assert response.status_code == status, (response.status_code, response.content)
    assert response["Content-Type"].startswith("application/json")
    assert response["Cache-Control"] == "no-store" or "no-store" in response["Cache-Control"]
    assert response.json()["error"] == error, response.json()
    return response.json()


def basic(client_id, secret):
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# --- Codes: single use, short-lived, bound to the client, its redirect URI and PKCE -------------------


def test_a_code_gives_tokens_once(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    first = redeem(client, portal, code)
    assert first.status_code == 200
    tokens = first.json()
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(tokens)
    assert tokens["token_type"].lower() == "bearer"
    assert "no-store" in first["Cache-Control"]

    refused(redeem(client, portal, code), "invalid_grant")
    # ... and the reuse revoked what the first redemption issued.
    assert userinfo(client, tokens["access_token"]).status_code == 401
    refused(refresh(client, portal, tokens["refresh_token"]), "invalid_grant")


def test_an_expired_code_is_refused(client, outbox, citizen, portal, clock, settings):
    code = code_for(client, outbox, portal)
    clock.travel(dt.timedelta(seconds=settings.CHAVE_POLICY["oidc_code_seconds"] + 1))
    refused(redeem(client, portal, code), "invalid_grant")


def test_a_code_just_before_expiry_still_works(client, outbox, citizen, portal, clock, settings):
    code = code_for(client, outbox, portal)
    clock.travel(dt.timedelta(seconds=settings.CHAVE_POLICY["oidc_code_seconds"] - 1))
    assert redeem(client, portal, code).status_code == 200


def test_of_ten_concurrent_redemptions_of_one_code_exactly_one_gets_tokens(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    forms = [portal.token_form(code) for _ in range(10)]  # each with its own client assertion

    def redeem_once(i):
        response = Client().post("/oidc/token", forms[i])
        return response.status_code, response.json()

    results = run_together(10, redeem_once)
    statuses = sorted(status for status, _ in results)
    assert statuses == [200] + [400] * 9, results
    assert all(body["error"] == "invalid_grant" for status, body in results if status == 400)
    winner = next(body for status, body in results if status == 200)
    # The losers were reuses: the winner's tokens are revoked too (RFC 6749 §4.1.2).
    assert userinfo(client, winner["access_token"]).status_code == 401


def test_a_wrong_code_verifier_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    refused(redeem(client, portal, code, code_verifier=secrets.token_urlsafe(48)), "invalid_grant")


def test_a_missing_code_verifier_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    refused(redeem(client, portal, code, code_verifier=None), "invalid_request")


def test_the_redirect_uri_must_be_the_one_of_the_request(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    refused(redeem(client, portal, code, redirect_uri=portal.redirect_uri + "/"), "invalid_grant")


def test_a_code_issued_to_another_portal_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    other = register_portal(name="Outro portal")
    other.verifier = portal.verifier
    refused(redeem(client, other, code), "invalid_grant")
    assert redeem(client, portal, code).status_code == 200  # the thief's attempt did not burn it


@no_login
def test_an_unknown_code_is_refused(client, portal):
    refused(redeem(client, portal, "nonsense"), "invalid_grant")
    refused(redeem(client, portal, "x" * 300), "invalid_grant")
    refused(redeem(client, portal, None), "invalid_request")


def test_a_code_of_a_cancelled_key_gives_nothing(client, outbox, citizen, portal):
    from chave.identity.services import cancel_key

    code = code_for(client, outbox, portal)
    cancel_key(citizen)
    refused(redeem(client, portal, code), "invalid_grant")


# --- private_key_jwt ---------------------------------------------------------------------------------


def with_assertion(portal, code, assertion):
    return portal.token_form(code, client_assertion=assertion)


def test_a_tampered_assertion_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    header, payload, signature = portal.assertion().split(".")
    other = jwt.encode({"alg": "RS256"}, {"iss": portal.client_id, "sub": portal.client_id, "exp": 1}, portal.key)
    tampered = ".".join([header, other.split(".")[1], signature])
    refused(client.post("/oidc/token", with_assertion(portal, code, tampered)), "invalid_client", 400)
    broken = ".".join([header, payload, signature[:-4] + ("AAAA" if not signature.endswith("AAAA") else "BBBB")])
    refused(client.post("/oidc/token", with_assertion(portal, code, broken)), "invalid_client", 400)
    assert redeem(client, portal, code).status_code == 200  # refused before the code was touched


def test_an_assertion_signed_with_another_key_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    stranger = RSAKey.generate_key(2048, private=True)
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    assertion = jwt.encode({"alg": "RS256", "kid": portal.key.kid},
                           {"iss": portal.client_id, "sub": portal.client_id, "aud": "http://127.0.0.1:8000/oidc/token",
                            "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(8)}, stranger)
    refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")


def test_an_assertion_for_another_audience_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    for audience in ("https://other-idp.example/token", ["https://a.example", "https://b.example"]):
        assertion = portal.assertion(audience=audience)
        refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")


@pytest.mark.parametrize("alg", ["PS256", "RS256"])
def test_assertions_signed_with_the_advertised_algorithms_are_accepted(client, outbox, citizen, portal, alg):
    assert alg in client.get("/.well-known/openid-configuration").json()[
        "token_endpoint_auth_signing_alg_values_supported"]
    code = code_for(client, outbox, portal)
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    assertion = jwt.encode({"alg": alg, "kid": portal.key.kid},
                           {"iss": portal.client_id, "sub": portal.client_id, "aud": "http://127.0.0.1:8000/oidc/token",
                            "iat": now, "exp": now + 60, "jti": secrets.token_urlsafe(8)}, portal.key, algorithms=[alg])
    assert client.post("/oidc/token", with_assertion(portal, code, assertion)).status_code == 200


def test_an_hmac_assertion_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    from joserfc.jwk import OctKey

    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    assertion = jwt.encode({"alg": "HS256"}, {"iss": portal.client_id, "sub": portal.client_id,
                                              "aud": "http://127.0.0.1:8000/oidc/token", "iat": now, "exp": now + 60,
                                              "jti": "x"}, OctKey.import_key("a-guessable-secret-" * 3))
    refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")


def test_the_issuer_is_an_accepted_audience(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    response = client.post("/oidc/token", with_assertion(portal, code, portal.assertion(audience="http://127.0.0.1:8000")))
    assert response.status_code == 200, response.content


def test_an_expired_assertion_is_refused_by_our_clock(client, outbox, citizen, portal, clock):
    code = code_for(client, outbox, portal)
    assertion = portal.assertion()
    clock.travel(dt.timedelta(minutes=3))  # past exp (60 s) and the allowed skew (60 s)
    refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")


def test_an_assertion_from_the_future_is_refused(client, outbox, citizen, portal, clock):
    code = code_for(client, outbox, portal)
    now = int(clock.now().timestamp())
    assertion = portal.assertion(iat=now + 600, exp=now + 660)
    refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")


def test_a_replayed_assertion_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    assertion = portal.assertion()
    assert client.post("/oidc/token", with_assertion(portal, code, assertion)).status_code == 200
    code = code_for(client, outbox, portal, prompt="login")
    refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")


def test_an_assertion_whose_issuer_is_not_its_subject_is_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    refused(client.post("/oidc/token", with_assertion(portal, code, portal.assertion(iss="someone-else"))),
            "invalid_client")


def test_an_assertion_in_another_clients_name_is_refused(client, outbox, citizen, portal):
    other = register_portal(name="Outro portal")
    code = code_for(client, outbox, portal)
    # Signed with our key but claiming to be the other portal: its keys do not verify it.
    assertion = portal.assertion(iss=other.client_id, sub=other.client_id)
    refused(client.post("/oidc/token", with_assertion(portal, code, assertion)), "invalid_client")
    # The other portal's own valid assertion cannot redeem our code.
    form = portal.token_form(code, client_assertion=other.assertion())
    refused(client.post("/oidc/token", form), "invalid_grant")


def test_a_client_id_beside_the_assertion_must_be_the_same_client(client, outbox, citizen, portal):
    other = register_portal(name="Outro portal")
    code = code_for(client, outbox, portal)
    refused(client.post("/oidc/token", portal.token_form(code, client_id=other.client_id)), "invalid_client")
    assert client.post("/oidc/token", portal.token_form(code, client_id=portal.client_id)).status_code == 200


def test_an_assertion_living_too_long_is_refused(client, outbox, citizen, portal, clock, settings):
    code = code_for(client, outbox, portal)
    now = int(clock.now().timestamp())
    too_long = settings.CHAVE_POLICY["oidc_client_assertion_max_seconds"] + 600
    refused(client.post("/oidc/token", with_assertion(portal, code, portal.assertion(iat=now, exp=now + too_long))),
            "invalid_client")


@no_login
@pytest.mark.parametrize("assertion", ["", "a.b.c", "not-a-jwt", "e30.e30.", "x" * 20000,
                                       base64.urlsafe_b64encode(b'{"alg":"none"}').decode() + ".e30."])
def test_garbage_assertions_are_refused(client, portal, assertion):
    form = portal.token_form("some-code", client_assertion=assertion)
    response = client.post("/oidc/token", form)
    assert response.status_code in (400, 401)
    assert response.json()["error"] in ("invalid_client", "invalid_request")


def test_claims_of_the_wrong_type_are_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    for overrides in ({"exp": "tomorrow"}, {"exp": None}, {"sub": 5}, {"jti": 7}, {"aud": None}):
        claims = {k: v for k, v in overrides.items()}
        refused(client.post("/oidc/token", with_assertion(portal, code, portal.assertion(**claims))),
                "invalid_client")


# --- client_secret_basic ---------------------------------------------------------------------------------


def test_a_secret_client_authenticates_with_http_basic(client, outbox, citizen):
    portal = register_portal(auth="client_secret_basic")
    code = code_for(client, outbox, portal)
    form = portal.token_form(code, client_assertion=None, client_assertion_type=None)
    response = client.post("/oidc/token", form, HTTP_AUTHORIZATION=basic(portal.client_id, portal.secret))
    assert response.status_code == 200, response.content
    assert claims_of(client, response.json()["id_token"])["aud"] == portal.client_id


def test_a_wrong_secret_is_refused(client, outbox, citizen):
    portal = register_portal(auth="client_secret_basic")
    code = code_for(client, outbox, portal)
    form = portal.token_form(code, client_assertion=None, client_assertion_type=None)
    response = client.post("/oidc/token", form, HTTP_AUTHORIZATION=basic(portal.client_id, "wrong"))
    refused(response, "invalid_client", 401)
    response = client.post("/oidc/token", form, HTTP_AUTHORIZATION="Basic %%%not-base64")
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    # The secret in the body (client_secret_post) is not how this client registered.
    response = client.post("/oidc/token", {**form, "client_id": portal.client_id, "client_secret": portal.secret})
    assert response.status_code in (400, 401) and response.json()["error"] == "invalid_client"
    response = client.post("/oidc/token", form, HTTP_AUTHORIZATION=basic(portal.client_id, portal.secret))
    assert response.status_code == 200


def test_a_secret_client_cannot_use_private_key_jwt(client, outbox, citizen):
    portal = register_portal(auth="client_secret_basic")
    code = code_for(client, outbox, portal)
    refused(client.post("/oidc/token", portal.token_form(code)), "invalid_client")


def test_a_key_client_cannot_use_a_secret(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    form = portal.token_form(code, client_assertion=None, client_assertion_type=None)
    refused(client.post("/oidc/token", form, HTTP_AUTHORIZATION=basic(portal.client_id, "anything")),
            "invalid_client", 401)
    refused(client.post("/oidc/token", form), "invalid_client", 401)


# --- Bad input ---------------------------------------------------------------------------------------------


@no_login
def test_get_at_the_token_endpoint_is_405(client):
    response = client.get("/oidc/token")
    refused(response, "invalid_request", 405)
    assert response["Allow"] == "POST"


@no_login
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/xml", ""])
def test_wrong_content_types_are_refused(client, portal, content_type):
    body = '{"grant_type": "authorization_code", "code": "x"}'
    refused(client.post("/oidc/token", body, content_type=content_type), "invalid_request")


def test_repeated_parameters_are_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    form = portal.token_form(code)
    form["code"] = [code, code]
    refused(client.post("/oidc/token", form), "invalid_request")
    form = {**portal.token_form(code), "grant_type": ["authorization_code", "refresh_token"]}
    refused(client.post("/oidc/token", form), "invalid_request")


def test_parameters_in_the_url_are_refused(client, outbox, citizen, portal):
    code = code_for(client, outbox, portal)
    form = portal.token_form(code)
    del form["code"]
    refused(client.post(f"/oidc/token?code={code}", form), "invalid_request")


@no_login
def test_huge_requests_are_refused(client, portal, settings):
    refused(client.post("/oidc/token", portal.token_form("c" * 50_000)), "invalid_request")
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    refused(client.post("/oidc/token", "a=" + "b" * 20_000, content_type="application/x-www-form-urlencoded"),
            "invalid_request")


@no_login
# client_credentials is served since issue 6 (service tokens for the signing APIs: chave/signing/tests).
@pytest.mark.parametrize("grant_type", ["password", "implicit", "urn:x", "", "\u00e7\u00e3o"])
def test_unknown_grant_types_are_refused(client, portal, grant_type):
    refused(client.post("/oidc/token", portal.token_form("x", grant_type=grant_type)), "unsupported_grant_type")


@no_login
def test_a_request_without_grant_type_is_refused(client, portal):
    refused(client.post("/oidc/token", portal.token_form("x", grant_type=None)), "unsupported_grant_type")


# --- Refresh tokens ----------------------------------------------------------------------------------------


def first_tokens(client, outbox, portal):
    response = redeem(client, portal, code_for(client, outbox, portal))
    assert response.status_code == 200
    return response.json()


def test_refresh_tokens_rotate(client, outbox, citizen, portal):
    tokens = first_tokens(client, outbox, portal)
    response = refresh(client, portal, tokens["refresh_token"])
    assert response.status_code == 200, response.content
    renewed = response.json()
    assert renewed["refresh_token"] != tokens["refresh_token"]
    assert userinfo(client, renewed["access_token"]).json()["name"] == "Maria Teste Silva"
    again = refresh(client, portal, renewed["refresh_token"])
    assert again.status_code == 200
    assert refresh(client, portal, again.json()["refresh_token"]).status_code == 200


def test_a_spent_refresh_token_coming_back_revokes_the_whole_login(client, outbox, citizen, portal):
    """Rotation with reuse detection (OAuth 2.0 Security BCP): a spent refresh token presented
    again means it was copied; Chave cannot tell the portal from the thief, so both lose."""
    from chave.audit.models import AuditEvent

    tokens = first_tokens(client, outbox, portal)
    renewed = refresh(client, portal, tokens["refresh_token"]).json()
    refused(refresh(client, portal, tokens["refresh_token"]), "invalid_grant")  # the copy comes back
    refused(refresh(client, portal, renewed["refresh_token"]), "invalid_grant")  # so the successor is dead
    assert userinfo(client, renewed["access_token"]).status_code == 401
    event = AuditEvent.objects.get(event="oidc.refresh_reuse")
    assert event.detail["client_id"] == portal.client_id and event.detail["revoked"] == 1


def test_of_concurrent_refreshes_with_one_token_one_succeeds(client, outbox, citizen, portal):
    tokens = first_tokens(client, outbox, portal)
    forms = [{"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
              "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
              "client_assertion": portal.assertion()} for _ in range(6)]
    results = run_together(6, lambda i: Client().post("/oidc/token", forms[i]).status_code)
    assert sorted(results) == [200] + [400] * 5


def test_a_refresh_token_works_only_for_its_portal(client, outbox, citizen, portal):
    tokens = first_tokens(client, outbox, portal)
    other = register_portal(name="Outro portal")
    refused(refresh(client, other, tokens["refresh_token"]), "invalid_grant")


def test_a_refresh_token_expires(client, outbox, citizen, portal, clock, settings):
    tokens = first_tokens(client, outbox, portal)
    clock.travel(dt.timedelta(seconds=settings.CHAVE_POLICY["oidc_refresh_token_seconds"] + 1))
    refused(refresh(client, portal, tokens["refresh_token"]), "invalid_grant")


def test_suspending_a_portal_stops_refresh_and_userinfo_at_once(client, outbox, citizen, portal):
    tokens = first_tokens(client, outbox, portal)
    federation.decide(RelyingParty.objects.get(client_id=portal.client_id), "suspend", by="test")
    refused(refresh(client, portal, tokens["refresh_token"]), "invalid_client")
    assert userinfo(client, tokens["access_token"]).status_code == 401
    # New logins are refused too (a page: the portal is no longer a client).
    assert client.get(portal.authorize_url()).status_code == 400


def test_a_cancelled_key_stops_refresh_and_userinfo(client, outbox, citizen, portal):
    from chave.identity.services import cancel_key

    tokens = first_tokens(client, outbox, portal)
    cancel_key(citizen)
    refused(refresh(client, portal, tokens["refresh_token"]), "invalid_grant")
    assert userinfo(client, tokens["access_token"]).status_code == 401


def test_refresh_cannot_widen_the_scope(client, outbox, citizen, portal):
    tokens = first_tokens(client, outbox, portal)
    refused(refresh(client, portal, tokens["refresh_token"], scope="openid profile email"), "invalid_scope")


# --- Userinfo ----------------------------------------------------------------------------------------------


@no_login
def test_userinfo_without_a_token_asks_for_one(client):
    response = client.get("/oidc/userinfo")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert "error=" not in response["WWW-Authenticate"]


@no_login
@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer nonsense", "Basic abc", "Bearer " + "x" * 5000,
                                    "token"])
def test_userinfo_with_a_bad_token_is_401(client, header):
    response = client.get("/oidc/userinfo", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error"] == "invalid_token"


def test_an_access_token_expires(client, outbox, citizen, portal, clock, settings):
    tokens = first_tokens(client, outbox, portal)
    clock.travel(dt.timedelta(seconds=settings.CHAVE_POLICY["oidc_access_token_seconds"] + 1))
    assert userinfo(client, tokens["access_token"]).status_code == 401


def test_userinfo_answers_get_and_post_only(client, outbox, citizen, portal):
    tokens = first_tokens(client, outbox, portal)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {tokens['access_token']}"}
    assert client.post("/oidc/userinfo", **auth).status_code == 200
    response = client.put("/oidc/userinfo", **auth)
    assert response.status_code == 405 and response.json()["error"] == "invalid_request"


# --- ID token -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["RS256", "ES256"])
def test_the_id_token_is_signed_with_the_portals_algorithm_and_a_published_key(client, outbox, citizen, alg):
    portal = register_portal(id_token_alg=alg)
    tokens = redeem(client, portal, code_for(client, outbox, portal)).json()
    published = KeySet.import_key_set(client.get("/oidc/jwks").json())
    token = jwt.decode(tokens["id_token"], published, algorithms=[alg])
    assert token.header["alg"] == alg and token.header["kid"] in {k.kid for k in published.keys}
    claims = token.claims
    assert claims["iss"] == "http://127.0.0.1:8000" and claims["aud"] == portal.client_id
    assert claims["nonce"] == portal.nonce
    assert claims["exp"] > claims["iat"]


def test_the_token_and_userinfo_endpoints_are_limited_per_address(client, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "oidc_token_per_ip": (2, 60), "oidc_userinfo_per_ip": (1, 60)}}
    for _ in range(2):
        assert client.post("/oidc/token", {"grant_type": "authorization_code"}).status_code == 401  # no client
    refused = client.post("/oidc/token", {"grant_type": "authorization_code"})
    assert refused.status_code == 429 and refused.json()["error"] == "temporarily_unavailable"
    assert int(refused["Retry-After"]) > 0
    assert client.get("/oidc/userinfo").status_code == 401
    assert client.get("/oidc/userinfo").status_code == 429
    other = client.post("/oidc/token", {"grant_type": "authorization_code"}, REMOTE_ADDR="198.51.100.10")
    assert other.status_code != 429
