"""Single sign-on, levels of assurance and the prompt / max_age rules, as citizen and portal see them.

Whether the citizen had to type PIN and code again is observed as a portal would (``auth_time``
and ``amr`` in the ID token) and as the citizen would (the login page came up; a new code message
reached their phone or mailbox).
"""

import datetime as dt

import pytest

from chave.login.tests.pages import says, speak

from .portal import register_portal
from .portal import query_of
from .signin import EMAIL, PHONE, ask, claims_of, codes_sent, redeem, sign_in, tokens, visit

pytestmark = pytest.mark.django_db(transaction=True)

LOA2, LOA3, LOA4 = "urn:chave:loa:2", "urn:chave:loa:3", "urn:chave:loa:4"


@pytest.fixture
def citizen(make_citizen):
    return make_citizen(phone=PHONE, email=EMAIL)


def id_claims(client, portal, trip):
    response = redeem(client, portal, trip.code)
    assert response.status_code == 200, response.content
    return claims_of(client, response.json()["id_token"])


# --- Single sign-on -------------------------------------------------------------------------------------


def test_a_second_portal_gets_in_without_pin_or_code(client, outbox, citizen, clock):
    finances = register_portal(name="Finanças")
    health = register_portal(name="Saúde")
    first = tokens(client, outbox, finances, channel="sms")
    assert first["pages"] == ["login", "consent"]
    messages = codes_sent(outbox)

    clock.travel(dt.timedelta(minutes=2))
    trip = visit(client, outbox, health)
    assert trip.pages == ["consent"]  # a new portal asks for consent, not for PIN and code
    assert codes_sent(outbox) == messages, "no new code was sent"
    second = id_claims(client, health, trip)
    assert second["auth_time"] == first["claims"]["auth_time"]
    assert second["acr"] == first["claims"]["acr"] == LOA3
    assert second["sid"] == first["claims"]["sid"]


def test_the_same_portal_again_needs_no_page_at_all(client, outbox, citizen):
    portal = register_portal()
    tokens(client, outbox, portal, channel="sms")
    messages = codes_sent(outbox)
    trip = visit(client, outbox, portal)
    assert trip.pages == [] and trip.code
    assert codes_sent(outbox) == messages


def test_without_a_session_the_citizen_signs_in(client, outbox, citizen):
    portal = register_portal()
    response = client.get(portal.authorize_url())
    assert response.status_code == 302 and response["Location"].endswith("/login/")
    assert "Portal das Finanças (teste)" in client.get("/login/").content.decode()


def test_a_portal_request_left_for_longer_than_a_login_lasts_is_forgotten(client, outbox, citizen, clock):
    portal = register_portal()
    client.get(portal.authorize_url(acr_values=LOA3))
    clock.travel(dt.timedelta(minutes=16))  # a login transaction lasts 15 minutes
    page = client.get("/login/").content.decode()
    assert "Portal das Finanças (teste)" not in page
    response = client.post("/login/", {"identifier": PHONE, "pin": "4719"})
    assert response["Location"].endswith("/login/channel/")  # no level 3 imposed: e-mail offered too
    client.post("/login/channel/", {"channel": "sms"})
    response = client.post("/login/code/", {"code": outbox.last_code(PHONE)})
    assert response.status_code == 302 and not response["Location"].startswith("/oidc/")


# --- Levels of assurance --------------------------------------------------------------------------------


def test_level_3_offers_only_sms_to_a_citizen_with_sms_and_email(client, outbox, citizen):
    portal = register_portal()
    client.get(portal.authorize_url(acr_values=LOA3))
    response = client.post("/login/", {"identifier": PHONE, "pin": "4719"})
    # One channel reaches level 3: no choice page, the code goes by SMS and nothing by e-mail.
    assert response.status_code == 302 and response["Location"].endswith("/login/code/")
    assert codes_sent(outbox, PHONE) == 1
    assert codes_sent(outbox, EMAIL) == 0


def test_without_a_level_the_citizen_chooses_between_sms_and_email(client, outbox, citizen):
    portal = register_portal()
    client.get(portal.authorize_url())
    response = client.post("/login/", {"identifier": PHONE, "pin": "4719"})
    assert response["Location"].endswith("/login/channel/")
    page = client.get("/login/channel/").content.decode()
    assert 'value="sms"' in page and 'value="email"' in page


def test_level_3_is_refused_clearly_to_a_citizen_with_only_email(client, outbox, make_citizen):
    make_citizen(phone=None, email=EMAIL)
    portal = register_portal()
    speak(client, "en")
    client.get(portal.authorize_url(acr_values=LOA3))
    response = client.post("/login/", {"identifier": EMAIL, "pin": "4719"})
    assert response.status_code == 400
    expected = says("%(portal)s asks for assurance level %(level)d, which a code to your registered contacts "
                    "cannot reach. Register a mobile number for SMS codes.",
                    portal="Portal das Finanças (teste)", level=3)
    assert expected in response.content.decode().replace("&#x27;", "'")
    assert codes_sent(outbox, EMAIL) == 0


def test_the_portals_registered_minimum_always_applies(client, outbox, citizen):
    portal = register_portal(min_level=3)
    trip = visit(client, outbox, portal, acr_values=LOA2)  # asking for less does not lower it
    assert codes_sent(outbox, EMAIL) == 0
    claims = id_claims(client, portal, trip)
    assert claims["acr"] == LOA3


def test_the_id_token_carries_acr_amr_and_auth_time(client, outbox, citizen, clock):
    portal = register_portal()
    before = int(clock.now().timestamp())
    body = tokens(client, outbox, portal, channel="email")
    claims = body["claims"]
    assert claims["acr"] == LOA2
    assert "pin" in claims["amr"] and "mfa" in claims["amr"]
    assert before <= claims["auth_time"] <= int(clock.now().timestamp())
    body = tokens(client, outbox, portal, channel="sms", prompt="login")
    assert body["claims"]["acr"] == LOA3 and "sms" in body["claims"]["amr"]


def test_a_level_2_login_is_not_enough_for_a_portal_that_needs_3(client, outbox, citizen):
    relaxed = register_portal(name="Biblioteca")
    strict = register_portal(name="Segurança Social", min_level=3)
    assert tokens(client, outbox, relaxed, channel="email")["claims"]["acr"] == LOA2
    messages = codes_sent(outbox)
    trip = visit(client, outbox, strict)
    assert trip.pages[0] == "login"
    assert codes_sent(outbox) == messages + 1  # a new code, by SMS
    assert outbox.last(PHONE).body.rstrip().endswith(outbox.last_code(PHONE))
    assert id_claims(client, strict, trip)["acr"] == LOA3


def test_acr_values_may_raise_the_level_for_one_request(client, outbox, citizen):
    portal = register_portal()
    assert tokens(client, outbox, portal, channel="email")["claims"]["acr"] == LOA2
    trip = visit(client, outbox, portal, acr_values=f"{LOA3} {LOA4}")
    assert trip.pages == ["login"]
    assert id_claims(client, portal, trip)["acr"] == LOA3


def test_a_level_3_session_serves_a_level_2_request(client, outbox, citizen):
    portal = register_portal()
    tokens(client, outbox, portal, channel="sms", acr_values=LOA3)
    trip = visit(client, outbox, portal, acr_values=LOA2)
    assert trip.pages == []
    assert id_claims(client, portal, trip)["acr"] == LOA3  # what was reached, not what was asked


def test_level_4_cannot_be_reached_with_a_code(client, outbox, citizen):
    portal = register_portal()
    client.get(portal.authorize_url(acr_values=LOA4))
    response = client.post("/login/", {"identifier": PHONE, "pin": "4719"})
    assert response.status_code == 400
    assert codes_sent(outbox, PHONE) == 0


def test_unknown_acr_values_are_ignored(client, outbox, citizen):
    portal = register_portal()
    trip = visit(client, outbox, portal, channel="email", acr_values="urn:other:loa:high")
    assert id_claims(client, portal, trip)["acr"] == LOA2


def test_an_essential_acr_in_the_claims_parameter_raises_the_level(client, outbox, citizen):
    portal = register_portal()
    claims = '{"id_token": {"acr": {"essential": true, "values": ["urn:chave:loa:3"]}}}'
    trip = visit(client, outbox, portal, claims=claims)
    assert codes_sent(outbox, EMAIL) == 0
    assert id_claims(client, portal, trip)["acr"] == LOA3


# --- prompt=login, max_age --------------------------------------------------------------------------------


def test_prompt_login_forces_a_fresh_login(client, outbox, citizen, clock):
    portal = register_portal()
    first = tokens(client, outbox, portal, channel="sms")["claims"]
    clock.travel(dt.timedelta(minutes=1))
    messages = codes_sent(outbox)
    trip = visit(client, outbox, portal, channel="sms", prompt="login")
    assert trip.pages == ["login"]
    assert codes_sent(outbox) == messages + 1
    second = id_claims(client, portal, trip)
    assert second["auth_time"] > first["auth_time"]
    assert second["sid"] == first["sid"]  # the same browser session, signed in again


def test_prompt_login_is_not_satisfied_by_a_login_made_for_an_earlier_request(client, outbox, citizen, clock):
    portal = register_portal()
    # An abandoned request sent the citizen to sign in; they did, from the login page.
    client.get(portal.authorize_url())
    sign_in(client, outbox, channel="sms")
    clock.travel(dt.timedelta(seconds=30))
    trip = visit(client, outbox, portal, channel="sms", prompt="login")
    assert trip.pages[0] == "login"


def test_max_age_exceeded_asks_for_a_new_login(client, outbox, citizen, clock):
    portal = register_portal()
    first = tokens(client, outbox, portal, channel="sms")["claims"]
    clock.travel(dt.timedelta(minutes=10))
    trip = visit(client, outbox, portal, channel="sms", max_age="300")
    assert trip.pages == ["login"]
    assert id_claims(client, portal, trip)["auth_time"] > first["auth_time"]


def test_max_age_not_exceeded_keeps_the_session(client, outbox, citizen, clock):
    portal = register_portal()
    first = tokens(client, outbox, portal, channel="sms")["claims"]
    clock.travel(dt.timedelta(minutes=4))
    messages = codes_sent(outbox)
    trip = visit(client, outbox, portal, max_age="300")
    assert trip.pages == [] and codes_sent(outbox) == messages
    assert id_claims(client, portal, trip)["auth_time"] == first["auth_time"]


def test_max_age_zero_is_a_fresh_login_that_does_not_loop(client, outbox, citizen, clock):
    portal = register_portal()
    tokens(client, outbox, portal, channel="sms")
    clock.travel(dt.timedelta(seconds=5))
    trip = visit(client, outbox, portal, channel="sms", max_age="0")
    assert trip.pages == ["login"] and trip.code


def test_prompt_login_with_new_attributes_signs_in_then_asks_consent_once(client, outbox, citizen):
    portal = register_portal()
    tokens(client, outbox, portal, channel="sms")
    trip = visit(client, outbox, portal, channel="sms", prompt="login", scope="openid profile pt:nif")
    assert trip.pages == ["login", "consent"] and trip.code


# --- prompt=none -------------------------------------------------------------------------------------------


def test_prompt_none_without_a_session_is_login_required(client, citizen):
    portal = register_portal()
    response = ask(client, portal, prompt="none")
    assert response.status_code == 302 and response["Location"].startswith(portal.redirect_uri)
    params = query_of(response["Location"])
    assert params["error"] == "login_required" and params["state"] == portal.state


def test_prompt_none_needing_a_higher_level_is_login_required(client, outbox, citizen):
    portal = register_portal()
    tokens(client, outbox, portal, channel="email")
    response = ask(client, portal, prompt="none", acr_values=LOA3)
    assert query_of(response["Location"])["error"] == "login_required"


def test_prompt_none_without_consent_is_consent_required(client, outbox, citizen):
    first = register_portal(name="Primeiro")
    second = register_portal(name="Segundo")
    tokens(client, outbox, first, channel="sms")
    response = ask(client, second, prompt="none")
    params = query_of(response["Location"])
    assert params["error"] == "consent_required" and params["state"] == second.state


def test_prompt_none_with_a_session_and_consent_gives_a_code_without_any_page(client, outbox, citizen):
    portal = register_portal()
    tokens(client, outbox, portal, channel="sms")
    messages = codes_sent(outbox)
    response = ask(client, portal, prompt="none")
    assert response.status_code == 302 and response["Location"].startswith(portal.redirect_uri)
    params = query_of(response["Location"])
    assert params["code"] and params["state"] == portal.state
    assert codes_sent(outbox) == messages
    assert redeem(client, portal, params["code"]).status_code == 200


def test_prompt_none_with_max_age_exceeded_is_login_required(client, outbox, citizen, clock):
    portal = register_portal()
    tokens(client, outbox, portal, channel="sms")
    clock.travel(dt.timedelta(minutes=10))
    response = ask(client, portal, prompt="none", max_age="60")
    assert query_of(response["Location"])["error"] == "login_required"


def test_a_cancelled_key_ends_single_sign_on(client, outbox, citizen):
    from chave.identity.services import cancel_key

    portal = register_portal()
    tokens(client, outbox, portal, channel="sms")
    cancel_key(citizen)
    response = ask(client, portal, prompt="none")
    assert query_of(response["Location"])["error"] == "login_required"
