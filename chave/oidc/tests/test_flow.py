"""The authorization code flow end to end through the pages (Django test client)."""

import json

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from chave.federation.attributes import PREFIX

from .portal import query_of, register_portal

pytestmark = pytest.mark.django_db(transaction=True)


def sign_in(client, outbox, phone="+351912345678", pin="4719"):
    response = client.post("/login/", {"identifier": phone, "pin": pin})
    assert response.status_code == 302, response.content[:500]
    if response["Location"].endswith("/login/channel/"):
        response = client.post("/login/channel/", {"channel": "sms"})
    response = client.post("/login/code/", {"code": outbox.last_code(phone)})
    assert response.status_code == 302
    return response


def test_a_portal_logs_a_citizen_in_and_gets_their_claims(client, make_citizen, outbox):
    key = make_citizen(phone="+351912345678", pin="4719")
    portal = register_portal()
    response = client.get(portal.authorize_url(scope="openid profile pt:identity"))
    assert response.status_code == 302 and response["Location"].endswith("/login/")
    assert "Portal das Finanças (teste)" in client.get("/login/").content.decode()
    response = sign_in(client, outbox)
    assert response["Location"].startswith("/oidc/authorize?")
    response = client.get(response["Location"])
    assert response["Location"].endswith("/oidc/consent")
    page = client.get("/oidc/consent").content.decode()
    assert "Maria Teste Silva" in page and key.citizen.doc_number in page
    response = client.post("/oidc/consent", {"decision": "allow", "attribute": ["NIC", "NomeProprio"]})
    response = client.get(response["Location"])
    assert response["Location"].startswith(portal.redirect_uri)
    params = query_of(response["Location"])
    assert params["state"] == portal.state

    token = client.post("/oidc/token", portal.token_form(params["code"]))
    assert token.status_code == 200, token.content
    body = token.json()
    jwks = KeySet.import_key_set(client.get("/oidc/jwks").json())
    id_token = jwt.decode(body["id_token"], jwks)
    assert id_token.claims["aud"] == portal.client_id
    assert id_token.claims["nonce"] == portal.nonce
    assert id_token.claims["acr"] == "urn:chave:loa:3"
    assert "sms" in id_token.claims["amr"]

    info = client.get("/oidc/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}").json()
    assert info["sub"] == id_token.claims["sub"]
    assert info["name"] == "Maria Teste Silva"
    assert info[PREFIX + "NIC"] == key.citizen.doc_number
    assert "birthdate" not in info  # refused at consent
    assert info[PREFIX + "AttributeStatus"]["DataNascimento"] == "withheld"

    # The code works once; a second redemption fails and revokes what the first issued.
    again = client.post("/oidc/token", portal.token_form(params["code"]))
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    revoked = client.get("/oidc/userinfo", HTTP_AUTHORIZATION=f"Bearer {body['access_token']}")
    assert revoked.status_code == 401


def test_discovery_names_the_endpoints(client, db):
    config = client.get("/.well-known/openid-configuration").json()
    assert config["code_challenge_methods_supported"] == ["S256"]
    assert config["token_endpoint"].endswith("/oidc/token")
    assert json.dumps(config)
