"""What client libraries send with their default settings, rule by rule (issue 14, items 1–7 and
14): long-lived client assertions, no nonce, extra scopes, ``offline_access``, ``ui_locales``,
``login_hint``, ``response_mode=form_post``, essential ``acr`` (eIDAS names too), refresh with a
narrower scope, and a discovery document that says what is true.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from urllib.parse import urlencode

import pytest
from django.conf import settings

from chave.counter import housekeeping
from chave.oidc.models import ClientAssertion

from .portal import query_of, register_portal
from .signin import PHONE, claims_of, redeem, refresh, sign_in, tokens, userinfo, visit

pytestmark = pytest.mark.django_db(transaction=True)

EIDAS_LOW = "http://eidas.europa.eu/LoA/low"
EIDAS_SUBSTANTIAL = "http://eidas.europa.eu/LoA/substantial"
EIDAS_HIGH = "http://eidas.europa.eu/LoA/high"


def issuer() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


def service_token(client, portal, assertion):
    """A client_credentials request: a client assertion at the token endpoint, nothing else."""
    return client.post("/oidc/token", {
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion})


@pytest.fixture
def citizen(make_citizen):
    return make_citizen()


@pytest.fixture
def with_email(make_citizen):
    """A citizen with a mobile and an e-mail (the login asks which to send the code to)."""
    return make_citizen(email="maria@example.pt")


@pytest.fixture
def portal(db):
    return register_portal()


# --- 1. Client assertions (RFC 7523) --------------------------------------------------------------


def test_a_client_assertion_valid_for_an_hour_is_accepted_and_longer_is_refused(client, clock, portal):
    now = int(clock.now().timestamp())
    assert service_token(client, portal, portal.assertion(exp=now + 3600)).status_code == 200
    too_long = service_token(client, portal, portal.assertion(exp=now + 3600 + 120))
    assert too_long.status_code == 400, too_long.content
    assert too_long.json() == {"error": "invalid_client", "error_description": "The client assertion lives too long."}


def test_a_jti_is_kept_until_its_assertion_expires_so_a_replay_is_refused(client, clock, portal):
    assertion = portal.assertion(exp=int(clock.now().timestamp()) + 3600)
    assert service_token(client, portal, assertion).status_code == 200
    clock.travel(dt.timedelta(minutes=55))
    replay = service_token(client, portal, assertion)
    assert replay.status_code == 400
    assert replay.json()["error_description"] == "The client assertion was already used."
    assert ClientAssertion.objects.count() == 1
    clock.travel(dt.timedelta(minutes=10))  # expired now: refused as expired, and forgotten by housekeeping
    assert service_token(client, portal, assertion).status_code == 400
    assert service_token(client, portal, portal.assertion()).status_code == 200
    assert ClientAssertion.objects.count() == 2
    assert housekeeping.run().expired_records_forgotten >= 1
    assert ClientAssertion.objects.count() == 1


@pytest.mark.parametrize("audience", ["issuer", "token", ["issuer"], ["https://elsewhere.example", "token"]])
def test_the_audience_may_be_the_issuer_the_token_endpoint_or_a_list_holding_either(client, portal, audience):
    names = {"issuer": issuer(), "token": issuer() + "/oidc/token"}
    aud = [names.get(a, a) for a in audience] if isinstance(audience, list) else names[audience]
    assert service_token(client, portal, portal.assertion(audience=aud)).status_code == 200


@pytest.mark.parametrize("aud", ["https://elsewhere.example/token", ["https://elsewhere.example"], issuer() + "/"])
def test_another_audience_is_refused(client, portal, aud):
    response = service_token(client, portal, portal.assertion(audience=aud))
    assert response.status_code == 400 and response.json()["error"] == "invalid_client"


# --- 2. nonce and state ------------------------------------------------------------------------------


def test_without_nonce_the_id_token_has_none_and_with_one_it_comes_back(client, outbox, citizen, portal):
    without = tokens(client, outbox, portal, nonce=None, state=None)
    assert "nonce" not in without["claims"]
    with_nonce = tokens(client, outbox, portal)
    assert with_nonce["claims"]["nonce"] == portal.nonce


def test_pkce_stays_mandatory_without_nonce(client, portal):
    response = client.get(portal.authorize_url(nonce=None, code_challenge=None, code_challenge_method=None))
    assert query_of(response["Location"])["error"] == "invalid_request"


def test_the_readme_says_what_is_required():
    readme = (settings.BASE_DIR.parent / "README.md").read_text()
    assert ("PKCE with `S256` is required of every portal; `nonce` and `state` are optional (OAuth 2.1, "
            "RFC 9700) and come back when sent.") in readme


# --- 3. Scopes and offline_access --------------------------------------------------------------------


def test_unknown_and_forbidden_scopes_are_ignored_and_the_token_response_says_what_was_granted(
        client, outbox, citizen):
    portal = register_portal(attributes=["NomeCompleto"], mandatory=["NomeCompleto"], offline_access=False)
    body = tokens(client, outbox, portal, scope="openid profile email address pt:nif admin offline_access")
    assert body["scope"] == "openid profile"
    assert "refresh_token" not in body
    info = userinfo(client, body["access_token"]).json()
    assert info["name"] == "Maria Teste Silva" and "email" not in info


def test_refresh_tokens_only_when_offline_access_is_asked_for(client, outbox, citizen, portal):
    assert "refresh_token" not in tokens(client, outbox, portal, scope="openid profile")
    body = tokens(client, outbox, portal, scope="openid profile offline_access")
    assert body["refresh_token"] and body["scope"] == "openid profile offline_access"


def test_discovery_lists_offline_access(client):
    assert "offline_access" in client.get("/.well-known/openid-configuration").json()["scopes_supported"]


# --- 4. ui_locales, login_hint, claims_locales ----------------------------------------------------


@pytest.mark.parametrize("ui_locales, heading", [("en-GB en", "Sign in with"), ("pt-PT", "Autentique-se"),
                                                ("fr pt", "Autentique-se")])
def test_ui_locales_chooses_the_language_of_the_login_page(client, portal, ui_locales, heading):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "pt-PT" if heading == "Sign in" else "en"
    response = client.get(portal.authorize_url(ui_locales=ui_locales), follow=True)
    page = response.content.decode()
    assert response.redirect_chain[-1][0].endswith("/login/")
    assert re.search(rf"<h1>[^<]*{heading}", page), page[:3000]


def test_ui_locales_carries_to_the_consent_page(client, outbox, citizen, portal):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "pt-PT"
    client.get(portal.authorize_url(ui_locales="en"))
    sign_in(client, outbox)
    response = client.get(portal.authorize_url(ui_locales="en"), follow=True)
    assert response.redirect_chain[-1][0].endswith("/oidc/consent")
    assert "Share your data with" in response.content.decode()


def test_login_hint_prefills_the_identifier_without_revealing_whether_it_exists(client, citizen, portal):
    def login_page(hint):
        client.cookies.clear()
        page = client.get(portal.authorize_url(login_hint=hint), follow=True).content.decode()
        # Tokens drawn per page: the CSRF token and the reference of the request "cancel" answers.
        return re.sub(r'name="(csrfmiddlewaretoken|request)" value="[^"]+"', "", page)

    known, unknown = login_page(PHONE), login_page("+351919999999")
    assert f'value="{PHONE}"' in known and 'value="+351919999999"' in unknown
    assert known.replace(PHONE, "X") == unknown.replace("+351919999999", "X")


def test_claims_locales_is_accepted(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal, claims_locales="en pt-PT")
    assert userinfo(client, body["access_token"]).json()["name"] == "Maria Teste Silva"


# --- 5. response_mode=form_post -----------------------------------------------------------------------


def test_form_post_delivers_the_code_with_one_button_and_no_script(client, outbox, citizen, portal):
    trip = visit(client, outbox, portal, response_mode="form_post", ui_locales="en")
    page = trip.response
    assert page.status_code == 200 and trip.callback is None
    html = page.content.decode()
    assert f'<form method="post" action="{portal.redirect_uri}">' in html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
    assert set(fields) == {"code", "state", "iss"} and fields["state"] == portal.state
    assert html.count("<button") == 1 and "Continue to Portal das Finanças (teste)" in html
    assert "<script" not in html.lower() and "onload" not in html
    assert f"form-action {portal.redirect_uri}" in page["Content-Security-Policy"]
    assert "script-src" not in page["Content-Security-Policy"]
    # The portal receives exactly what a query response would have carried.
    assert redeem(client, portal, fields["code"]).status_code == 200


def test_form_post_in_portuguese_and_for_errors_too(client, portal):
    client.defaults["HTTP_ACCEPT_LANGUAGE"] = "pt-PT"
    page = client.get(portal.authorize_url(response_mode="form_post", prompt="none"))
    html = page.content.decode()
    assert page.status_code == 200 and "Continuar para Portal das Finanças (teste)" in html
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
    assert fields["error"] == "login_required" and fields["state"] == portal.state


def test_discovery_advertises_form_post(client):
    assert client.get("/.well-known/openid-configuration").json()["response_modes_supported"] == [
        "query", "form_post"]


# --- 6. Assurance levels: essential acr, acr_values, eIDAS ---------------------------------------


def essential(*values):
    return json.dumps({"id_token": {"acr": {"essential": True, "values": list(values)}}})


def test_an_essential_acr_is_met_exactly_by_one_of_its_values(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal, claims=essential(EIDAS_SUBSTANTIAL))  # an SMS code: level 3
    assert body["claims"]["acr"] == EIDAS_SUBSTANTIAL
    body = tokens(client, outbox, portal, claims=essential("urn:chave:loa:2", EIDAS_LOW))
    assert body["claims"]["acr"] == "urn:chave:loa:2"  # level 3 meets level 2: the first named of the highest met


def test_an_essential_acr_chave_cannot_meet_is_unmet_authentication_requirements(client, portal):
    response = client.get(portal.authorize_url(claims=essential("urn:example:loa:gold")))
    params = query_of(response["Location"])
    assert params["error"] == "unmet_authentication_requirements" and params["state"] == portal.state
    assert params["error_description"].endswith(".")


def test_acr_values_stays_a_minimum(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal, acr_values=EIDAS_LOW)
    assert body["claims"]["acr"] == "urn:chave:loa:3"  # what the login reached, above the minimum


def test_eidas_high_asks_for_the_citizen_card(client, portal):
    from chave.login.services import login_for

    client.get(portal.authorize_url(acr_values=EIDAS_HIGH))
    request = type("R", (), {"session": client.session})()
    assert login_for(request).min_level == 4


def test_discovery_lists_the_eidas_levels(client):
    supported = client.get("/.well-known/openid-configuration").json()["acr_values_supported"]
    assert supported == ["urn:chave:loa:2", "urn:chave:loa:3", "urn:chave:loa:4", EIDAS_LOW, EIDAS_SUBSTANTIAL,
                         EIDAS_HIGH]


# --- 7. Refresh --------------------------------------------------------------------------------------


def test_a_refresh_with_a_narrower_scope_narrows_userinfo(client, outbox, with_email, portal):
    body = tokens(client, outbox, portal, scope="openid profile email offline_access", channel="sms")
    assert userinfo(client, body["access_token"]).json()["name"] == "Maria Teste Silva"
    narrowed = refresh(client, portal, body["refresh_token"], scope="openid email offline_access")
    assert narrowed.status_code == 200, narrowed.content
    assert narrowed.json()["scope"] == "openid email offline_access"
    info = userinfo(client, narrowed.json()["access_token"]).json()
    assert "name" not in info and info["email"] == "maria@example.pt"
    # The narrowed grant stays narrow at the next refresh.
    again = refresh(client, portal, narrowed.json()["refresh_token"]).json()
    assert again["scope"] == "openid email offline_access" and "name" not in userinfo(
        client, again["access_token"]).json()


def test_a_refresh_issues_a_new_id_token_of_the_same_login(client, outbox, citizen, portal, clock):
    body = tokens(client, outbox, portal)
    clock.travel(dt.timedelta(minutes=5))
    renewed = refresh(client, portal, body["refresh_token"]).json()
    claims = claims_of(client, renewed["id_token"])
    first = body["claims"]
    assert claims["sub"] == first["sub"] and claims["aud"] == first["aud"]
    assert claims["auth_time"] == first["auth_time"] and claims["acr"] == first["acr"] and claims["sid"] == first["sid"]
    assert claims["iat"] > first["iat"] and "nonce" not in claims


def test_refresh_token_reuse_is_invalid_grant_with_a_description(client, outbox, citizen, portal):
    body = tokens(client, outbox, portal)
    assert refresh(client, portal, body["refresh_token"]).status_code == 200
    reused = refresh(client, portal, body["refresh_token"])
    assert reused.status_code == 400
    assert reused.json() == {"error": "invalid_grant", "error_description": (
        "The refresh token was already used or revoked: every token of this sign-in is revoked now "
        "(reuse detection).")}
    unknown = refresh(client, portal, "not-a-token").json()
    assert unknown == {"error": "invalid_grant", "error_description": "The refresh token is not valid."}


# --- 14. Discovery complete and true; errors as sentences; repeated parameters ---------------------


def test_discovery_advertises_every_grant_claim_and_endpoint_it_has(client):
    config = client.get("/.well-known/openid-configuration").json()
    assert config["grant_types_supported"] == ["authorization_code", "refresh_token", "client_credentials"]
    assert {"email_verified", "phone_number_verified"} <= set(config["claims_supported"])
    for name, value in config.items():
        if name.endswith("_endpoint") or name == "jwks_uri":
            path = value.removeprefix(issuer())
            assert client.get(path).status_code != 404, name
    assert config["request_parameter_supported"] is True  # signed request objects (RFC 9101)
    assert config["request_uri_parameter_supported"] is False  # only Chave's own pushed requests
    assert config["frontchannel_logout_supported"] is True and config["backchannel_logout_supported"] is True
    assert config["frontchannel_logout_session_supported"] is True


def test_the_verified_claims_are_released(client, outbox, with_email, portal):
    info = userinfo(client, tokens(client, outbox, portal, scope="openid email phone", channel="sms")[
        "access_token"]).json()
    assert info["email_verified"] is True and info["phone_number_verified"] is True


@pytest.mark.parametrize("name", ["scope", "state", "nonce", "code_challenge", "prompt", "max_age", "claims",
                                  "acr_values", "ui_locales", "login_hint"])
def test_a_repeated_parameter_is_answered_at_the_redirect_uri(client, portal, name):
    params = {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
              "scope": "openid", "state": portal.state, "code_challenge": portal.challenge,
              "code_challenge_method": "S256"}
    params[name] = [params.get(name) or "x", "y"]
    response = client.get("/oidc/authorize?" + urlencode(params, doseq=True))
    assert response.status_code == 302 and response["Location"].startswith(portal.redirect_uri + "?")
    answer = query_of(response["Location"])
    assert answer["error"] == "invalid_request"
    assert answer["error_description"] == f"The parameter '{name}' may not be repeated."
    assert answer.get("state") == (None if name == "state" else portal.state)


@pytest.mark.parametrize("name", ["client_id", "redirect_uri", "response_type"])
def test_a_repeated_client_or_redirect_uri_gets_a_page(client, portal, name):
    params = {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
              "scope": "openid", "code_challenge": portal.challenge, "code_challenge_method": "S256"}
    params[name] = [params[name], params[name]]
    response = client.get("/oidc/authorize?" + urlencode(params, doseq=True))
    assert response.status_code == 400 and not response.has_header("Location")


def test_error_descriptions_are_sentences(client, outbox, portal):
    descriptions = []
    for extra in ({"response_type": "token"}, {"code_challenge_method": "plain"}, {"max_age": "x"},
                  {"claims": "[]"}, {"scope": "profile"}, {"prompt": "none"}, {"response_mode": "jwt"}):
        answer = query_of(client.get(portal.authorize_url(**extra))["Location"])
        descriptions.append(answer.get("error_description", answer["error"]))
    for form in ({"grant_type": "password"}, {"grant_type": "authorization_code", "code": "x"},
                 {"grant_type": "refresh_token", "refresh_token": "x"}):
        form = {**form, "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": portal.assertion()}
        answer = client.post("/oidc/token", form).json()
        descriptions.append(answer.get("error_description", answer["error"]))
    for text in descriptions:
        print(text)
        assert re.fullmatch(r"[A-Z'].*[.]", text) and "[" not in text and "{" not in text, text
