"""Signing in with the Citizen Card: the card page → the real agent (PKCS#11 on a SoftHSM card)
→ Chave's return URL, with every refusal the issue names, each with its own message."""

from __future__ import annotations

import datetime as dt

import pytest
from django.conf import settings
from django.test import Client

from chave import clock as service_clock
from chave.audit.models import AuditEvent
from chave.card import protocol, services
from chave.login import services as login

from .conftest import card_citizen, hidden_fields, json_sign, running_agent

pytestmark = pytest.mark.django_db(transaction=True)


def refusal_of(response) -> str:
    page = response.content.decode()
    assert 'id="card-refused"' in page, page[:800]
    return page


def test_a_card_holder_with_a_key_is_signed_in_at_level_4(browser_for, cards, make_citizen):
    card = cards["good"]
    card_citizen(card)
    key = make_citizen(nic=card.nic, full_name=card.full_name)
    browser = browser_for()
    response = browser.sign_in(card)
    assert response.status_code == 302 and response["Location"] == "/card/done/"
    page = browser.client.get("/card/done/").content.decode()
    assert card.full_name in page and f"NIC {card.nic}" in page and 'id="card-signed-in"' in page
    session = browser.client.session
    who = session[login.SESSION_SIGNED_IN]
    assert (who["key_id"], who["method"], who["assurance_level"]) == (key.pk, "citizen_card", 4)
    assert session[services.SESSION_IDENTITY]["nic"] == card.nic
    event = AuditEvent.objects.filter(event="login").latest("at")
    assert (event.channel, event.detail["level"], event.citizen_id) == ("citizen_card", 4, key.citizen_id)
    assert AuditEvent.objects.filter(event="card.answer", outcome="ok").count() == 1


def test_a_blocked_key_is_signed_in_for_the_personal_area_but_not_for_portals(browser_for, cards, make_citizen):
    card = cards["good"]
    card_citizen(card)
    key = make_citizen(nic=card.nic, full_name=card.full_name)
    from chave.identity import services as identity

    identity.block_key(key, by="test")
    browser = browser_for()
    browser.client.get("/login/")  # a portal's request, as the OIDC provider leaves it
    session = browser.client.session
    session[login.SESSION_FOR] = {"portal": "Finanças", "min_level": 4, "return_to": "/oidc/authorize?x=1",
                                  "at": service_clock.now().isoformat()}
    session.save()
    response = browser.sign_in(card)
    assert response["Location"] == "/card/done/"  # not back to the portal
    page = browser.client.get("/card/done/").content.decode()
    assert 'id="card-portal-blocked"' in page and 'id="card-recover"' in page
    assert browser.client.session[login.SESSION_SIGNED_IN]["key_id"] == key.pk


def test_a_card_holder_without_a_key_is_offered_registration(browser_for, cards):
    card = cards["good"]
    card_citizen(card)
    browser = browser_for()
    response = browser.sign_in(card)
    assert response["Location"] == "/card/done/"
    page = browser.client.get("/card/done/").content.decode()
    assert 'id="card-register"' in page and 'id="card-signed-in"' not in page
    assert login.SESSION_SIGNED_IN not in browser.client.session


def test_next_brings_the_citizen_back(browser_for, cards):
    card = cards["good"]
    card_citizen(card)
    response = browser_for().sign_in(card, next_url="/card/register/")
    assert response["Location"] == "/card/register/"


def test_the_answer_cannot_be_replayed(browser_for, cards):
    card = cards["good"]
    browser = browser_for()
    status, page = browser.at_agent(browser.card_page(), card=card.token_label)
    answer = hidden_fields(page, "agent-return")
    first = browser.answer(answer)
    assert first.status_code == 303
    again = browser.answer(answer)
    assert again.status_code == 400
    assert "This Citizen Card answer was already used" in refusal_of(again)
    finish = first["Location"]
    assert browser.client.get(finish).status_code == 302
    replay = browser.client.get(finish)
    assert replay.status_code == 400 and "already used" in refusal_of(replay)
    assert AuditEvent.objects.filter(event="card.answer", outcome="replayed").count() == 1
    assert AuditEvent.objects.filter(event="card.finish", outcome="replayed").count() == 1


def test_the_challenge_cannot_be_used_from_another_session(browser_for, cards):
    card = cards["good"]
    attacker_client = Client()
    attacker_client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    victim, attacker = browser_for(), browser_for(attacker_client)
    # The attacker has the victim's answer (and even its finish link) but not the victim's session.
    status, page = victim.at_agent(victim.card_page(), card=card.token_label)
    response = attacker.answer(hidden_fields(page, "agent-return"))
    assert response.status_code == 303
    stolen = attacker.client.get(response["Location"])
    assert stolen.status_code == 403
    assert "started in another browser or window" in refusal_of(stolen)
    assert services.SESSION_IDENTITY not in attacker.client.session
    # A challenge issued to the attacker's own session, answered by the victim's card, is no
    # use to the attacker either: the finish token goes only to the browser that answered.
    fields = attacker.card_page()
    status, page = victim.at_agent(fields, card=card.token_label)
    response = victim.answer(hidden_fields(page, "agent-return"))
    assert victim.client.get(response["Location"]).status_code == 403
    challenge_id = dict(fields)[protocol.F_CHALLENGE_ID]
    guessed = attacker.client.get(f"/card/return?c={challenge_id}&f=guess")
    assert guessed.status_code == 403


def test_an_expired_challenge_is_refused(browser_for, cards, clock):
    from chave import policy

    browser = browser_for()
    fields = browser.card_page()
    status, page = browser.at_agent(fields, card=cards["good"].token_label)
    clock.travel(dt.timedelta(seconds=policy.get("card_challenge_seconds") + 1))
    response = browser.answer(hidden_fields(page, "agent-return"))
    assert response.status_code == 400 and "took too long" in refusal_of(response)


@pytest.mark.parametrize("kind, words", [
    ("expired", "has expired. Renew your card"),
    ("revoked", "has been revoked"),
    ("foreign", "not issued by an authority Chave recognises"),
    ("unreachable", "could not check whether this Citizen Card has been revoked"),
])
def test_bad_cards_are_refused_with_their_own_message(browser_for, cards, kind, words):
    card = cards[kind]
    card_citizen(card)
    browser = browser_for()
    status, page = browser.at_agent(browser.card_page(), card=card.token_label)
    assert status == 200
    response = browser.answer(hidden_fields(page, "agent-return"))
    assert response.status_code == 303  # checked at once; the outcome is shown in the asking session
    final = browser.client.get(response["Location"])
    assert final.status_code == 400 and words in refusal_of(final)
    assert services.SESSION_IDENTITY not in browser.client.session
    assert login.SESSION_SIGNED_IN not in browser.client.session
    reason = {"expired": "expired", "revoked": "revoked", "foreign": "untrusted",
              "unreachable": "revocation_unknown"}[kind]
    assert AuditEvent.objects.filter(event="card.answer", outcome=reason).count() == 1


def test_revocation_is_read_from_the_crl_when_so_configured(browser_for, cards, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "card_revocation_methods": ["crl"]}
    browser = browser_for()
    status, page = browser.at_agent(browser.card_page(), card=cards["revoked"].token_label)
    final = browser.client.get(browser.answer(hidden_fields(page, "agent-return"))["Location"])
    assert final.status_code == 400 and "has been revoked" in refusal_of(final)
    ok = browser_for().sign_in(cards["good"])
    assert ok.status_code == 302 and ok["Location"] == "/card/done/"


def test_a_tampered_signature_is_refused(browser_for, cards):
    browser = browser_for()
    status, page = browser.at_agent(browser.card_page(), card=cards["good"].token_label)
    fields = hidden_fields(page, "agent-return")
    signature = protocol.b64decode(dict(fields)[protocol.F_SIGNATURE])
    tampered = bytes([signature[0] ^ 1]) + signature[1:]
    fields = [(n, protocol.b64encode(tampered) if n == protocol.F_SIGNATURE else v) for n, v in fields]
    final = browser.client.get(browser.answer(fields)["Location"])
    assert final.status_code == 400 and "signature does not match" in refusal_of(final)


def test_a_signature_for_another_origin_is_refused_at_the_server(browser_for, cards, card_dir):
    """A card answer obtained by another website (an agent serving it signs its origin)."""
    elsewhere = "https://phishing.example"
    with running_agent(card_dir, elsewhere) as phishing_agent:
        def signed_elsewhere(browser):
            fields = dict(browser.card_page())
            status, body = json_sign(phishing_agent, {
                "challenge_id": fields[protocol.F_CHALLENGE_ID], "challenge": fields[protocol.F_CHALLENGE],
                "origin": elsewhere, "pin": cards["good"].pin, "card": cards["good"].token_label})
            assert status == 200 and body["origin"] == elsewhere
            return [(protocol.F_CHALLENGE_ID, body["challenge_id"]), (protocol.F_CERTIFICATE, body["certificate"]),
                    (protocol.F_SIGNATURE, body["signature"])]

        # Claiming that origin is refused as such; claiming ours, its signature does not match.
        browser = browser_for()
        named = browser.client.get(browser.answer([*signed_elsewhere(browser),
                                                   (protocol.F_ORIGIN, elsewhere)])["Location"])
        assert named.status_code == 400 and "signed for another website" in refusal_of(named)
        browser = browser_for()
        hidden = browser.client.get(browser.answer([*signed_elsewhere(browser),
                                                    (protocol.F_ORIGIN, browser.service)])["Location"])
        assert hidden.status_code == 400 and "signature does not match" in refusal_of(hidden)


def test_garbage_and_unknown_challenges_are_refused_without_a_500(browser_for, cards):
    browser = browser_for()
    unknown = browser.answer([(protocol.F_CHALLENGE_ID, "not-a-uuid"), (protocol.F_CERTIFICATE, "x")])
    assert unknown.status_code == 400 and "not known or has expired" in refusal_of(unknown)
    fields = dict(browser.card_page())
    garbage = browser.answer([(protocol.F_CHALLENGE_ID, fields[protocol.F_CHALLENGE_ID]),
                              (protocol.F_ORIGIN, browser.service), (protocol.F_CERTIFICATE, "%%%"),
                              (protocol.F_SIGNATURE, "AAAA")])
    final = browser.client.get(garbage["Location"])
    assert final.status_code == 400 and "could not be read" in refusal_of(final)
    assert browser.client.get("/card/return?c=&f=").status_code == 400


def test_a_portal_asking_for_level_4_gets_the_card_login(client, cards, make_citizen, browser_for, service):
    """The portal asks for level 4: the login page offers only the card (a PIN is refused);
    after the card the ID token says loa:4 with the card's methods."""
    from chave.oidc.tests.portal import register_portal
    from chave.oidc.tests.signin import claims_of, redeem, visit

    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name)
    portal = register_portal()
    browser = browser_for(client)
    response = client.get(portal.authorize_url(acr_values="urn:chave:loa:4"))
    assert response.status_code == 302 and response["Location"] == "/login/"
    page = client.get("/login/").content.decode()
    assert 'id="card-only"' in page and 'id="login-card"' in page and 'name="pin"' not in page
    assert client.post("/login/", {"identifier": "+351912345678", "pin": "4719"}).status_code == 400
    back = browser.sign_in(card)
    assert back.status_code == 302 and back["Location"].startswith("/oidc/authorize?")
    trip = visit(client, None, portal, url=back["Location"])
    assert trip.pages == ["consent"] and trip.callback and "code" in trip.callback, trip
    tokens = redeem(client, portal, trip.code, client_assertion=portal.assertion(audience=service + "/oidc/token"))
    assert tokens.status_code == 200, tokens.content
    claims = claims_of(client, tokens.json()["id_token"])
    assert claims["acr"] == "urn:chave:loa:4" and "sc" in claims["amr"] and "hwk" in claims["amr"]


def test_the_card_page_tells_the_agent_its_origin(browser_for, cards):
    """An https page posting to http://127.0.0.1 sends ``Origin: null`` under the site's usual
    referrer policy; the card page sends its origin (never its path) so the agent can check it."""
    browser = browser_for()
    response = browser.client.get("/card/?next=/card/register/")
    assert response["Referrer-Policy"] == "origin"
    assert response["Cache-Control"].startswith("max-age=0") or "no-cache" in response["Cache-Control"]


def test_a_certificate_that_is_not_a_card_is_refused_cleanly(browser_for, cards):
    """Self-made certificates signing correctly are still no card: an Ed25519 key (a type cards
    do not use) and an RSA key from no recognised authority."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
    from cryptography.x509.oid import NameOID

    browser = browser_for()
    now = service_clock.now()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Mallory")])
    for key, words in ((ed25519.Ed25519PrivateKey.generate(), "signature does not match"),
                       (rsa.generate_private_key(public_exponent=65537, key_size=2048), "not issued by an authority")):
        rsa_key = isinstance(key, rsa.RSAPrivateKey)
        certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                       .serial_number(1).not_valid_before(now - dt.timedelta(days=1))
                       .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256() if rsa_key else None))
        fields = dict(browser.card_page())
        payload = protocol.signed_payload(challenge_id=fields[protocol.F_CHALLENGE_ID],
                                          challenge=fields[protocol.F_CHALLENGE], origin=browser.service)
        signature = key.sign(payload, padding.PKCS1v15(), hashes.SHA256()) if rsa_key else key.sign(payload)
        response = browser.answer([
            (protocol.F_CHALLENGE_ID, fields[protocol.F_CHALLENGE_ID]), (protocol.F_ORIGIN, browser.service),
            (protocol.F_CERTIFICATE, protocol.b64encode(certificate.public_bytes(serialization.Encoding.DER))),
            (protocol.F_SIGNATURE, protocol.b64encode(signature)),
        ])
        final = browser.client.get(response["Location"])
        assert final.status_code == 400 and words in refusal_of(final)


def test_starting_card_sign_ins_is_limited_per_address(client, settings):
    from chave.card.models import CardChallenge

    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "card_challenge_per_ip": (2, 600)}}
    assert client.get("/card/").status_code == 200
    assert client.get("/counter/login/card").status_code == 200
    refused = client.get("/card/", HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 429 and "Too many Citizen Card sign-ins" in refused.content.decode()
    staff = client.get("/counter/login/card", HTTP_ACCEPT_LANGUAGE="en")
    assert staff.status_code == 429 and 'id="card-agent-form"' not in staff.content.decode()
    assert CardChallenge.objects.count() == 2  # no row for a refused start
    assert client.get("/card/", REMOTE_ADDR="198.51.100.9").status_code == 200  # another address
