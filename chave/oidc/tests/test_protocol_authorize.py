"""The authorization endpoint as a portal (or an attacker crafting links) sees it.

Errors go back to the portal, with its ``state``, only once the client and the exact redirect URI
are known; before that the citizen gets an error page (400) and nobody is redirected anywhere.
"""

from urllib.parse import urlencode

import pytest
from django.conf import settings

from chave.oidc.models import AuthorizationCode

from .portal import REDIRECT_URI, query_of, register_portal
from .signin import visit

pytestmark = pytest.mark.django_db
signs_in = pytest.mark.django_db(transaction=True)  # the delivery worker runs: transactional


@pytest.fixture
def portal(db):
    return register_portal()


def error_back(response, portal, error):
    """The portal's callback got ``error`` with its own ``state``."""
    assert response.status_code == 302, response.content[:300]
    assert response["Location"].startswith(portal.redirect_uri + "?"), response["Location"]
    params = query_of(response["Location"])
    assert params["error"] == error, params
    assert params["state"] == portal.state
    assert params["iss"] == settings.CHAVE_PUBLIC_URL.rstrip("/")  # RFC 9207, errors included
    assert "code" not in params
    return params


def error_page(response):
    """An error page for the citizen: no redirect anywhere."""
    assert response.status_code == 400, response.status_code
    assert not response.has_header("Location")
    assert "<h1>" in response.content.decode()
    return response.content.decode()


def url(portal, **params):
    return portal.authorize_url(**params)


def raw(params: dict) -> str:
    return "/oidc/authorize?" + urlencode(params, doseq=True)


def base(portal) -> dict:
    return {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
            "scope": "openid", "state": portal.state, "nonce": portal.nonce,
            "code_challenge": portal.challenge, "code_challenge_method": "S256"}


# --- Response type, PKCE, nonce, state -------------------------------------------------------------


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", "code token", "none"])
def test_only_the_authorization_code_flow_is_offered(client, portal, response_type):
    error_back(client.get(url(portal, response_type=response_type)), portal, "unsupported_response_type")


def test_a_request_without_response_type_is_refused(client, portal):
    error_back(client.get(url(portal, response_type=None)), portal, "unsupported_response_type")


def test_pkce_is_required(client, portal):
    params = error_back(client.get(url(portal, code_challenge=None, code_challenge_method=None)), portal,
                        "invalid_request")
    assert "PKCE" in params["error_description"]


def test_pkce_plain_is_refused(client, portal):
    error_back(client.get(url(portal, code_challenge=portal.verifier, code_challenge_method="plain")), portal,
               "invalid_request")


def test_pkce_without_the_method_is_refused(client, portal):
    # RFC 7636 would default to "plain": we insist on S256 being named.
    error_back(client.get(url(portal, code_challenge_method=None)), portal, "invalid_request")


def test_a_malformed_code_challenge_is_refused(client, portal):
    error_back(client.get(url(portal, code_challenge="short")), portal, "invalid_request")


@signs_in
def test_nonce_and_state_are_optional_with_pkce(client, outbox, make_citizen, portal):
    """OAuth 2.1 / RFC 9700: PKCE (S256, required) binds the code to the browser; nonce and state
    are the portal's choice. Without them the code comes back with neither."""
    make_citizen()
    trip = visit(client, outbox, portal, scope="openid", nonce=None, state=None)
    assert trip.code and "state" not in trip.callback


def test_the_openid_scope_is_required(client, portal):
    error_back(client.get(url(portal, scope="profile")), portal, "invalid_scope")


@signs_in
def test_state_comes_back_with_the_code(client, outbox, make_citizen, portal):
    make_citizen()
    trip = visit(client, outbox, portal, scope="openid")
    assert trip.callback["state"] == portal.state and trip.callback["code"]
    # RFC 9207: the response names its issuer, as discovery says it will (mix-up defence).
    assert trip.callback["iss"] == client.get("/.well-known/openid-configuration").json()["issuer"]
    assert client.get("/.well-known/openid-configuration").json()["authorization_response_iss_parameter_supported"]


@signs_in
def test_a_nonce_already_used_by_the_portal_is_refused(client, outbox, make_citizen, portal):
    make_citizen()
    visit(client, outbox, portal, scope="openid")
    error_back(client.get(url(portal, scope="openid")), portal, "invalid_request")


# --- Redirect URI: exact match, else a page ----------------------------------------------------------


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example.com/callback",
    REDIRECT_URI + "/",
    REDIRECT_URI + "?next=/",
    REDIRECT_URI.upper(),
    REDIRECT_URI.replace("https", "http"),
    REDIRECT_URI + "#x",
    REDIRECT_URI + "\u00e7",
    REDIRECT_URI + '"',
])
def test_a_redirect_uri_that_is_not_exactly_registered_gets_a_page_not_a_redirect(client, portal, redirect_uri):
    for response in (client.get(url(portal, redirect_uri=redirect_uri)),
                     client.get(url(portal, redirect_uri=redirect_uri, response_type="token")),
                     client.get(url(portal, redirect_uri=redirect_uri, nonce=None))):
        error_page(response)


def test_a_missing_redirect_uri_gets_a_page(client, portal):
    error_page(client.get(url(portal, redirect_uri=None)))


def test_an_unregistered_client_gets_a_page(client, portal):
    error_page(client.get(url(portal, client_id="chave-nobody")))
    error_page(client.get(url(portal, client_id=None)))
    error_page(client.get(url(portal, client_id="x" * 5000)))


def test_a_portal_awaiting_approval_cannot_start_a_login(client, db):
    requested = register_portal(approve=False)
    page = error_page(client.get(url(requested)))
    assert "invalid_client" in page


def test_a_suspended_portal_cannot_start_a_login(client, portal):
    from chave.federation import services as federation
    from chave.federation.models import RelyingParty

    federation.decide(RelyingParty.objects.get(client_id=portal.client_id), "suspend", by="test")
    error_page(client.get(url(portal)))


# --- Bad input: a clear 4xx, never a 500 ------------------------------------------------------------


@pytest.mark.parametrize("claims", ["{", "[]", "null", '"x"', '{"id_token": 5}', '{"userinfo": []}',
                                    "[" * 1500 + "]" * 1500])
def test_a_malformed_claims_parameter_is_refused(client, portal, claims):
    response = client.get(url(portal, claims=claims))
    if response.status_code == 400:  # too long to be a parameter at all
        error_page(response)
    else:
        error_back(response, portal, "invalid_request")


@pytest.mark.parametrize("max_age", ["abc", "-1", "1.5", "9" * 40, "9" * 5000, "１２", "12\n", " 12", "+12"])
def test_a_malformed_max_age_is_refused(client, portal, max_age):
    response = client.get(url(portal, max_age=max_age))
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        error_back(response, portal, "invalid_request")


@pytest.mark.parametrize("name", ["response_type", "client_id", "redirect_uri", "scope", "state", "nonce",
                                  "code_challenge", "prompt", "max_age", "claims", "acr_values"])
def test_a_repeated_parameter_is_refused(client, portal, name):
    params = base(portal)
    params[name] = [params.get(name, "x") or "x", params.get(name, "y") or "y"]
    response = client.get(raw(params))
    assert response.status_code in (302, 400)
    if response.status_code == 302:
        assert response["Location"].startswith(portal.redirect_uri)
        assert query_of(response["Location"])["error"] == "invalid_request"
    assert not AuthorizationCode.objects.exists()


@pytest.mark.parametrize("name", ["state", "nonce", "scope", "acr_values", "login_hint", "x" * 3000])
def test_huge_parameters_are_refused(client, portal, name):
    params = {**base(portal), name: "a" * 100_000}
    response = client.get(raw(params))
    assert response.status_code == 400
    error_page(response)


def test_a_nonce_longer_than_can_be_kept_goes_back_as_invalid_request(client, portal):
    error_back(client.get(url(portal, nonce="n" * 300)), portal, "invalid_request")


def test_response_modes_other_than_query_and_form_post_are_refused(client, portal):
    params = error_back(client.get(url(portal, response_mode="fragment")), portal, "invalid_request")
    assert params["error_description"] == "The response mode must be 'query' or 'form_post'."


def test_prompt_none_with_another_value_is_refused(client, portal):
    error_back(client.get(url(portal, prompt="none login")), portal, "invalid_request")


@pytest.mark.parametrize("value", ['co"de', "c\u00f3de", "code\\"])
def test_a_response_type_with_forbidden_characters_gets_a_page(client, portal, value):
    error_page(client.get(url(portal, response_type=value)))


def test_other_methods_get_a_page(client, portal):
    assert client.put(url(portal)).status_code == 400
    assert client.delete(url(portal)).status_code == 400


def test_a_portal_may_post_the_request(client, make_citizen, portal):
    """OpenID Connect allows POST to the authorization endpoint: it needs no CSRF token."""
    from django.test import Client

    make_citizen()
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/oidc/authorize", base(portal))
    assert response.status_code == 302 and response["Location"].endswith("/login/")
