"""Counter staff signing in with their own Citizen Card (issue 5): the same agent, PKCS#11 card
and certificate checks as a citizen's card sign-in, but the holder is signed in as staff — never
as a citizen — and only a card read for this sign-in counts."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command
from django.utils import translation

from chave.audit.models import AuditEvent
from chave.card import services
from chave.counter import services as counter
from chave.counter.views import SESSION_STAFF
from chave.login import services as login

from .conftest import card_citizen

pytestmark = pytest.mark.django_db(transaction=True)
STAFF_CARD_PAGE = "/counter/login/card"


def staff_with_card(card, role="clerk"):
    return counter.create_staff(username=f"{role}-card", name=card.full_name, role=role,
                                counter="Loja do Cidadão Aveiro", nic=card.nic).staff


def test_a_clerk_signs_in_with_their_own_card_and_is_not_signed_in_as_a_citizen(browser_for, cards, make_citizen):
    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name)  # the clerk is a citizen with a key, too
    staff = staff_with_card(card)
    browser = browser_for()
    response = browser.sign_in(card, path=STAFF_CARD_PAGE, next_url="/counter/find/")
    assert response.status_code == 302 and response["Location"].startswith(STAFF_CARD_PAGE)
    response = browser.client.get(response["Location"])
    assert response.status_code == 302 and response["Location"] == "/counter/find/"
    page = browser.client.get("/counter/find/").content.decode()
    assert staff.name in page and 'id="staff-bar"' in page
    session = browser.client.session
    assert session[SESSION_STAFF] == staff.pk
    assert login.SESSION_SIGNED_IN not in session and services.SESSION_IDENTITY not in session
    event = AuditEvent.objects.filter(event="staff.sign_in").latest("at")
    assert (event.outcome, event.detail["method"], event.detail["staff"]) == ("ok", "citizen_card", staff.username)
    assert not AuditEvent.objects.filter(event="login").exists()


def test_a_card_without_a_staff_account_is_refused(browser_for, cards):
    staff_with_card(cards["good"])
    browser = browser_for()
    response = browser.sign_in(cards["other"], path=STAFF_CARD_PAGE)
    response = browser.client.get(response["Location"])
    assert response.status_code == 403
    assert "This Citizen Card does not belong to a staff account." in response.content.decode()
    assert SESSION_STAFF not in browser.client.session
    assert browser.client.get("/counter/find/").status_code == 302
    assert AuditEvent.objects.filter(event="staff.sign_in", outcome="unknown_card").count() == 1


def test_a_revoked_staff_card_is_refused_by_the_card_checks(browser_for, cards):
    staff_with_card(cards["revoked"])
    browser = browser_for()
    fields = browser.card_page(path=STAFF_CARD_PAGE)
    status, page = browser.at_agent(fields, card=cards["revoked"].token_label)
    from .conftest import hidden_fields

    response = browser.answer(hidden_fields(page, "agent-return"))
    response = browser.client.get(response["Location"])
    assert response.status_code == 400 and 'id="card-refused"' in response.content.decode()
    assert SESSION_STAFF not in browser.client.session


def test_a_card_read_before_the_staff_sign_in_does_not_count(browser_for, cards, make_citizen):
    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name)
    staff_with_card(card)
    browser = browser_for()
    browser.sign_in(card)  # the citizen's own card sign-in, in this browser
    assert browser.client.session.get(services.SESSION_IDENTITY)
    response = browser.client.get(STAFF_CARD_PAGE)
    assert response.status_code == 200 and 'id="card-agent-form"' in response.content.decode()
    assert SESSION_STAFF not in browser.client.session


@translation.override("en")
def test_the_staff_command_links_a_card_by_nic(cards, capsys):
    call_command("staff", "add", "--username", "ines", "--name", "Inês Dias", "--role", "auditor",
                 "--nic", cards["good"].nic, "--json")
    assert '"nic": "%s"' % cards["good"].nic in capsys.readouterr().out
    with pytest.raises(CommandError, match="civil ID number"):
        call_command("staff", "add", "--username", "rui", "--name", "Rui", "--role", "auditor",
                     "--nic", cards["good"].nic)
    with pytest.raises(CommandError):
        call_command("staff", "add", "--username", "rui", "--name", "Rui", "--role", "auditor", "--nic", "12x")
