"""Online registration and unlocking, and counter staff signing in with their own card, in a real
browser (Debian's chromium, driven by Playwright):
Chave's card page → the card agent's own PIN page (signing with the SoftHSM card through
PKCS#11) → back to Chave, codes read from the development outbox, in Portuguese and English.

Chave is served at ``localhost`` and the agent at ``127.0.0.1``, so the agent's answer reaches
Chave cross-site, as it does in production. Portuguese text is asserted only for strings that
already have translations; elsewhere the test follows ids and field names.
"""

import os
import re

import pytest

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.identity.models import Citizen, KeyStatus  # noqa: E402

from .conftest import CARD_PIN, card_citizen  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MOBILE, EMAIL, NEW_PIN = "+351916000222", "rita@example.pt", "6052"


def through_the_agent(page, card, *, next_path: str, lang: str, start: str = ""):
    """From Chave's card page (``start``: the citizen's, by default) to the agent's PIN page, the
    PIN typed there, and back to Chave at ``next_path``."""
    page.goto(page.chave + (start or f"/card/?next={next_path}"))
    page.locator("#card-continue").click()
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/sign$"))
    assert page.locator("html").get_attribute("lang") == lang
    if page.locator("#card").count():
        page.locator("#card").select_option(card.token_label)
    page.locator("#pin").fill(CARD_PIN)
    page.locator("#agent-sign").click()
    page.wait_for_url(re.compile(re.escape(page.chave + next_path) + "$"))


@pytest.mark.parametrize("locale, lang", [("pt-PT", "pt-PT"), ("en-GB", "en")])
def test_register_a_key_online_through_the_card_agent(phone, live_server, agent, service, cards, outbox,
                                                      locale, lang):
    card = cards["good"]
    card_citizen(card)
    page = phone(locale)
    page.chave = live_server.url
    through_the_agent(page, card, next_path="/card/register/", lang=lang)
    assert page.locator("html").get_attribute("lang") == lang
    assert card.full_name in page.locator("#register-who").inner_text()
    if lang == "pt-PT":
        assert page.get_by_label("Número de telemóvel").count() == 1
    page.locator("#id_mobile").fill("916 000 222")
    page.locator("#id_email").fill(EMAIL)
    page.locator("#register-send").click()
    page.wait_for_url(re.compile(r"/card/register/confirm/$"))
    page.locator("#id_mobile-code").fill(outbox.last_code(MOBILE))
    page.locator("#id_email-code").fill(outbox.last_code(EMAIL))
    page.locator("#confirm-codes").click()
    page.wait_for_url(re.compile(r"/card/register/pin/$"))
    if lang == "pt-PT":
        assert page.get_by_label("Novo PIN", exact=True).count() == 1
    page.locator("#id_new_pin").fill(NEW_PIN)
    page.locator("#id_new_pin_again").fill("6053")
    page.locator("#register-activate").click()
    mismatch = "Os dois PIN não são iguais." if lang == "pt-PT" else "The two PINs are not the same."
    assert mismatch in page.locator("#id_new_pin_again_error").inner_text()
    page.locator("#id_new_pin").fill(NEW_PIN)
    page.locator("#id_new_pin_again").fill(NEW_PIN)
    page.locator("#register-activate").click()
    page.wait_for_url(re.compile(r"/card/register/done/$"))
    assert page.locator("#register-done").count() == 1
    key = Citizen.objects.get(doc_number=card.nic).key
    assert key.status == KeyStatus.ACTIVE and key.contacts.filter(verified_at__isnull=False).count() == 2
    assert CARD_PIN not in page.content()


def test_unlock_a_blocked_key_through_the_card_agent(phone, live_server, agent, service, cards, outbox,
                                                     make_citizen):
    from chave.identity import services as identity

    card = cards["good"]
    card_citizen(card)
    key = make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE, language="en")
    identity.block_key(key, by="test")
    page = phone("en-GB")
    page.chave = live_server.url
    through_the_agent(page, card, next_path="/card/recover/", lang="en")
    assert page.locator("#recover-status").get_attribute("data-status") == "blocked"
    page.locator("#recover-send").click()
    page.wait_for_url(re.compile(r"/card/recover/pin/$"))
    page.locator("#id_code").fill(outbox.last_code(MOBILE))
    page.locator("#id_new_pin").fill(NEW_PIN)
    page.locator("#id_new_pin_again").fill(NEW_PIN)
    page.locator("#recover-save").click()
    page.wait_for_url(re.compile(r"/card/recover/done/$"))
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and key.pin_failures == 0
    assert identity.check_login_pin(key, NEW_PIN).ok


def test_a_clerk_signs_in_at_the_counter_with_their_own_card(new_page, live_server, agent, service, cards):
    from chave.audit.models import AuditEvent
    from chave.counter import services as counter

    card = cards["good"]
    staff = counter.create_staff(username="clerk-card", name=card.full_name, role="clerk", counter="Loja Aveiro",
                                 nic=card.nic).staff
    page = new_page(viewport={"width": 1280, "height": 900}, locale="en-GB")  # the desk's computer
    page.chave = live_server.url
    page.goto(live_server.url + "/counter/login?next=/counter/find/")
    start = page.locator("#staff-card-sign-in").get_attribute("href")
    assert start == "/counter/login/card?next=/counter/find/"
    through_the_agent(page, card, start=start, next_path="/counter/find/", lang="en")
    assert f"Signed in: {card.full_name} (Counter clerk)" in page.locator("#staff-bar").inner_text()
    assert CARD_PIN not in page.content()
    page.get_by_label("NIC, mobile number or e-mail").fill("12345678")
    page.get_by_role("button", name="Find").click()
    assert page.locator("#no-results").is_visible()  # the desk works
    page.goto(live_server.url + "/area/")  # the card opened the counter only, not the citizen's area
    page.wait_for_url(re.compile(r"/area/enter/"))
    event = AuditEvent.objects.filter(event="staff.sign_in").latest("at")
    assert (event.outcome, event.detail["method"], event.detail["staff"]) == ("ok", "citizen_card", staff.username)


def test_a_card_without_a_staff_account_is_refused_at_the_counter(phone, live_server, agent, service, cards):
    from chave.counter import services as counter

    counter.create_staff(username="clerk-card", name=cards["good"].full_name, role="clerk", counter="Loja Aveiro",
                         nic=cards["good"].nic)
    page = phone("en-GB")
    page.chave = live_server.url
    through_the_agent(page, cards["other"], start="/counter/login/card", next_path="/counter/login/card", lang="en")
    refusal = page.locator("#staff-card-refused")
    assert "This Citizen Card does not belong to a staff account." in refusal.inner_text()
    page.goto(live_server.url + "/counter/find/")
    page.wait_for_url(re.compile(r"/counter/login\?next=/counter/find/$"))  # not signed in
