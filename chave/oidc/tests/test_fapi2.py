"""The FAPI 2.0 Security Profile (issue 14 item 10) for a portal registered with ``--profile fapi2``:
pushed requests, PKCE S256, ``private_key_jwt`` with PS256 or ES256 only, DPoP, ``iss`` in the
authorization response, codes of at most 60 s, ES256 ID tokens."""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError

from chave.oidc.models import AuthorizationCode

from .dpop_client import DpopKey
from .portal import query_of, register_portal
from .signin import claims_of, visit

pytestmark = pytest.mark.django_db(transaction=True)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def issuer() -> str:
    return settings.CHAVE_PUBLIC_URL.rstrip("/")


@pytest.fixture
def portal(db):
    return register_portal(profile="fapi2", id_token_alg="ES256")


def push(client, portal, key: DpopKey, alg="PS256"):
    form = {"response_type": "code", "client_id": portal.client_id, "redirect_uri": portal.redirect_uri,
            "scope": "openid profile", "state": portal.state, "code_challenge": portal.challenge,
            "code_challenge_method": "S256", "client_assertion_type": ASSERTION_TYPE}
    return key.send(lambda proof: client.post("/oidc/par", {
        **form, "client_assertion": portal.assertion(audience=issuer(), alg=alg)}, HTTP_DPOP=proof),
        "POST", issuer() + "/oidc/par")


def redeem(client, portal, code, key: DpopKey, alg="PS256"):
    form = portal.token_form(code)
    return key.send(lambda proof: client.post("/oidc/token", {
        **form, "client_assertion": portal.assertion(audience=issuer(), alg=alg)}, HTTP_DPOP=proof),
        "POST", issuer() + "/oidc/token")


def code_by_par(client, outbox, portal, key):
    pushed = push(client, portal, key)
    assert pushed.status_code == 201, pushed.content
    url = "/oidc/authorize?" + urlencode({"client_id": portal.client_id, "request_uri": pushed.json()["request_uri"]})
    trip = visit(client, outbox, portal, url=url)
    assert trip.callback["iss"] == issuer()  # RFC 9207
    return trip.code


def test_a_fapi2_portal_signs_a_citizen_in(client, outbox, make_citizen, portal):
    make_citizen()
    key = DpopKey()
    response = redeem(client, portal, code_by_par(client, outbox, portal, key), key)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["token_type"] == "DPoP"
    id_token = claims_of(client, body["id_token"])
    assert id_token["aud"] == portal.client_id


def test_a_fapi2_portal_must_push_its_requests(client, portal):
    answer = query_of(client.get(portal.authorize_url())["Location"])
    assert answer["error"] == "invalid_request" and "push" in answer["error_description"]


def test_a_fapi2_portal_must_use_dpop(client, outbox, make_citizen, portal):
    make_citizen()
    code = code_by_par(client, outbox, portal, DpopKey())
    form = {**portal.token_form(code), "client_assertion": portal.assertion(audience=issuer(), alg="PS256")}
    refused = client.post("/oidc/token", form)
    assert refused.status_code == 400 and "DPoP" in refused.json()["error_description"]


def test_a_fapi2_portal_may_not_sign_with_rs256(client, outbox, make_citizen, portal):
    make_citizen()
    key = DpopKey()
    assert push(client, portal, key, alg="RS256").json()["error"] == "invalid_client"
    code = code_by_par(client, outbox, portal, key)
    assert redeem(client, portal, code, key, alg="RS256").json()["error"] == "invalid_client"
    rsa_proofs = DpopKey("RS256")
    refused = redeem(client, portal, code, rsa_proofs)
    assert refused.status_code == 400 and "PS256 or ES256" in refused.json()["error_description"]


def test_a_fapi2_code_lives_at_most_60_seconds(client, outbox, make_citizen, portal, clock):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "oidc_code_seconds": 600}
    make_citizen()
    key = DpopKey()
    code = code_by_par(client, outbox, portal, key)
    row = AuthorizationCode.objects.get()
    assert (row.expires_at - row.created_at) == dt.timedelta(seconds=60)
    clock.travel(dt.timedelta(seconds=61))
    assert redeem(client, portal, code, key).json()["error"] == "invalid_grant"


@pytest.mark.parametrize("changes, field", [({"auth": "client_secret_basic"}, "auth_method"),
                                            ({"id_token_alg": "RS256"}, "id_token_alg")])
def test_a_fapi2_registration_needs_keys_and_es256_id_tokens(db, changes, field):
    with pytest.raises(ValidationError) as refused:
        register_portal(profile="fapi2", **{"id_token_alg": "ES256", **changes})
    assert field in refused.value.error_dict
