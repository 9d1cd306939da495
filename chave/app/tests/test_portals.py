"""Portals see how the citizen signed in with the Chave app (RFC 8176 ``amr`` in the ID token):
``swk`` for an approval or a QR sign-in signed with the device key, ``otp`` for a typed code."""

from __future__ import annotations

import re

import pytest

from chave.oidc.tests.portal import register_portal
from chave.oidc.tests.signin import claims_of, redeem, visit

from .conftest import PHONE, PIN

pytestmark = pytest.mark.django_db(transaction=True)


def _to_the_portal(client, portal, response):
    """Follow the login's way back: the authorization request, the consent page, the callback."""
    return visit(client, None, portal, url=response["Location"]).callback


def _claims(client, portal, callback):
    answer = redeem(client, portal, callback["code"])
    assert answer.status_code == 200, answer.content
    return claims_of(client, answer.json()["id_token"])


def test_an_approval_in_the_app_is_swk_at_level_3(paired, client):
    portal = register_portal(min_level=3)
    assert client.get(portal.authorize_url())["Location"] == "/login/"
    assert client.post("/login/", {"identifier": PHONE, "pin": PIN})["Location"] == "/login/channel/"
    client.post("/login/channel/", {"channel": "app_approve"})
    number = int(re.search(r'id="match-number"[^>]*>(\d+)<', client.get("/login/approve/").content.decode()).group(1))
    paired.approve(paired.inbox()["approvals"][0]["id"], number)
    claims = _claims(client, portal, _to_the_portal(client, portal, client.get("/login/approve/")))
    assert claims["acr"] == "urn:chave:loa:3" and claims["amr"] == ["pin", "swk", "mfa"]


def test_an_offline_code_is_otp(paired, client, clock):
    portal = register_portal()
    client.get(portal.authorize_url())
    client.post("/login/", {"identifier": PHONE, "pin": PIN})
    client.post("/login/channel/", {"channel": "app_offline"})
    response = client.post("/login/code/", {"code": paired.offline_code(at=clock.now().timestamp())})
    claims = _claims(client, portal, _to_the_portal(client, portal, response))
    assert claims["amr"] == ["pin", "otp", "mfa"]


def test_qr_sign_in_for_a_portal_names_the_portal_in_the_app(paired, client):
    portal = register_portal(name="Portal da Saúde")
    client.get(portal.authorize_url())
    page = client.get("/login/app/").content.decode()
    typed = re.search(r'id="sign-in-code">([A-Z]{4}-\d{4})<', page).group(1)
    scanned = paired.scan(typed)
    assert scanned["portal"] == "Portal da Saúde"
    paired.qr_pin(scanned["id"], PIN)
    claims = _claims(client, portal, _to_the_portal(client, portal, client.get("/login/app/")))
    assert claims["amr"] == ["pin", "swk", "mfa"] and claims["acr"] == "urn:chave:loa:3"


def test_a_portal_asking_for_the_card_is_not_offered_the_app(paired, client):
    portal = register_portal(min_level=4)
    client.get(portal.authorize_url())
    assert client.get("/login/app/")["Location"] == "/login/"
