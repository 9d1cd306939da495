"""The card agent: it serves one website, takes the PIN only on its own page, signs through
PKCS#11 with the SoftHSM card, and speaks JSON to programs. It is ``chave card-agent`` running
as its own process, as on a citizen's computer."""

from __future__ import annotations

import pytest

from chave.card import protocol, services

from .conftest import CARD_PIN, card_citizen, hidden_fields, http, json_sign, running_agent

pytestmark = pytest.mark.django_db(transaction=True)


def test_the_agent_refuses_a_form_from_another_website(browser_for, cards):
    browser = browser_for()
    fields = browser.card_page()
    status, page = browser.at_agent(fields, origin="https://phishing.example")
    assert status == 403 and 'id="agent-refused"' in page and "Nothing was signed" in page
    # No Origin, but a Referer from elsewhere: refused too; no Origin nor Referer: refused.
    status, _ = http(f"{browser.agent.own_origin}/sign", data=fields,
                     headers={"Referer": "https://phishing.example/page"})
    assert status == 403
    status, _ = http(f"{browser.agent.own_origin}/sign", data=fields)
    assert status == 403


def test_the_agent_refuses_a_return_url_on_another_website(browser_for, cards):
    browser = browser_for()
    fields = [(n, "https://phishing.example/card/return" if n == protocol.F_RETURN_URL else v)
              for n, v in browser.card_page()]
    status, page = browser.at_agent(fields)
    assert status == 403 and "Nothing was signed" in page


def test_the_pin_is_taken_only_from_the_agents_own_page(browser_for, cards):
    browser = browser_for()
    status, page = http(f"{browser.agent.own_origin}/sign", data=browser.card_page(),
                        headers={"Origin": browser.service})
    request_id = dict(hidden_fields(page))["request"]
    for origin in (browser.service, "https://phishing.example", "null"):
        status, page = http(f"{browser.agent.own_origin}/pin", data={"request": request_id, "pin": CARD_PIN},
                            headers={"Origin": origin})
        assert status == 403 and 'id="agent-return"' not in page


def test_the_agent_answers_only_for_its_own_host_name(agent, cards):
    status, _ = http(f"{agent.own_origin}/", headers={"Host": "attacker.example:80"})
    assert status == 421
    status, page = http(f"{agent.own_origin}/")
    assert status == 200 and agent.service_origin in page


def test_a_wrong_card_pin_is_said_on_the_agents_page_and_nothing_reaches_chave(browser_for, cards):
    browser = browser_for()
    status, page = browser.at_agent(browser.card_page(), pin="1357", card=cards["good"].token_label)
    assert status == 400 and 'id="agent-error"' in page and "The card PIN is wrong" in page
    assert 'id="agent-return"' not in page


def test_several_cards_are_offered_to_choose_from(browser_for, cards):
    browser = browser_for()
    status, page = http(f"{browser.agent.own_origin}/sign", data=browser.card_page(),
                        headers={"Origin": browser.service})
    assert status == 200
    assert 'name="card"' in page and cards["good"].token_label in page and cards["other"].full_name in page
    request_id = dict(hidden_fields(page))["request"]
    status, page = http(f"{browser.agent.own_origin}/pin", data={"request": request_id, "pin": CARD_PIN},
                        headers={"Origin": browser.agent.own_origin})
    assert status == 400 and "Several cards are inserted" in page


def test_the_signed_page_continues_to_chave_with_a_visible_button(browser_for, cards):
    browser = browser_for()
    status, page = browser.at_agent(browser.card_page(), card=cards["good"].token_label)
    assert status == 200
    assert 'id="agent-continue"' in page and f'action="{browser.service}/card/return"' in page
    fields = dict(hidden_fields(page, "agent-return"))
    assert fields[protocol.F_ORIGIN] == browser.service
    assert CARD_PIN not in page


def test_programs_sign_through_the_json_endpoint(browser_for, cards):
    card = cards["good"]
    card_citizen(card)
    browser = browser_for()
    fields = dict(browser.card_page())
    request = {"challenge_id": fields[protocol.F_CHALLENGE_ID], "challenge": fields[protocol.F_CHALLENGE],
               "origin": browser.service, "pin": CARD_PIN, "card": card.token_label}
    status, body = json_sign(browser.agent, {**request, "origin": "https://phishing.example"})
    assert (status, body) == (403, {"error": "wrong_origin"})
    status, body = json_sign(browser.agent, request, origin="https://phishing.example")
    assert (status, body) == (403, {"error": "wrong_origin"})
    status, body = json_sign(browser.agent, {**request, "pin": "1357"})
    assert (status, body) == (401, {"error": "wrong_pin"})
    status, body = json_sign(browser.agent, request)
    assert status == 200 and body["origin"] == browser.service
    response = browser.answer([
        (protocol.F_CHALLENGE_ID, body["challenge_id"]), (protocol.F_ORIGIN, body["origin"]),
        (protocol.F_CERTIFICATE, body["certificate"]), (protocol.F_SIGNATURE, body["signature"]),
    ])
    assert browser.client.get(response["Location"]).status_code == 302
    assert browser.client.session[services.SESSION_IDENTITY]["nic"] == card.nic


def test_the_agent_uses_the_card_it_is_told_to(browser_for, cards, card_dir, settings):
    """``chave card-agent --card LABEL``: no choice of card is asked for."""
    card = cards["good"]
    card_citizen(card)
    browser = browser_for()
    with running_agent(card_dir, browser.service, "--card", card.token_label) as chosen:
        settings.CHAVE_CARD_AGENT_PORT = chosen.port
        browser.agent = chosen
        status, page = http(f"{chosen.own_origin}/sign", data=browser.card_page(), headers={"Origin": browser.service})
        assert status == 200 and 'name="pin"' in page and 'name="card"' not in page
        status, page = browser.at_agent(browser.card_page())
        assert status == 200, page
        response = browser.answer(hidden_fields(page, "agent-return"))
        assert browser.client.get(response["Location"]).status_code == 302
        assert browser.client.session[services.SESSION_IDENTITY]["nic"] == card.nic
