"""Every Citizen Card action of the personal area, and counter staff signing in with their own
card, in a real browser (Debian's chromium, driven by Playwright): Chave's card page → the card
agent's own PIN page (signing with the SoftHSM card through PKCS#11) → back to Chave, codes read
from the development outbox, in Portuguese and English:

- registering a key online;
- unlocking a blocked key and a temporarily locked one with a new PIN;
- recovering the forgotten PIN of an active key (a wrong code first: refused, nothing changes);
- entering the personal area with the card (level 4), and cancelling the key there without a PIN;
- a clerk signing in at the counter with their card, and a card without a staff account refused.

Chave is served at ``localhost`` and the agent at ``127.0.0.1``, so the agent's answer reaches
Chave cross-site, as it does in production. Portuguese text is asserted only for strings that
already have translations (``says``: the catalogue's words); elsewhere the test follows ids and
field names. The card's PIN never appears in a page of Chave.
"""

import os
import re

import pytest
from django.utils import translation
from django.utils.translation import ngettext

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave import policy  # noqa: E402
from chave.delivery.messages import notice_message  # noqa: E402
from chave.identity import services as identity  # noqa: E402
from chave.identity.models import Citizen, Key, KeyStatus  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.testing.browser import click_and_wait, expect  # noqa: E402

from .conftest import CARD_PIN, card_citizen  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MOBILE, EMAIL, NEW_PIN = "+351916000222", "rita@example.pt", "6052"
OLD_PIN = "4719"  # make_citizen's
LANGS = [("pt-PT", "pt-PT"), ("en-GB", "en")]
CITIZEN_LANGUAGE = {"pt-PT": "pt-pt", "en": "en"}


def through_the_agent(page, card, *, next_path: str, lang: str, start: str | None = ""):
    """From Chave's card page (``start``: the citizen's, by default; None: the page is open
    already) to the agent's PIN page, the PIN typed there, and back to Chave at ``next_path``."""
    if start is not None:
        page.goto(page.chave + (start or f"/card/?next={next_path}"))
    page.locator("#card-continue").click()
    page.wait_for_url(re.compile(r"^http://127\.0\.0\.1:\d+/sign$"))
    assert page.locator("html").get_attribute("lang") == lang
    if page.locator("#card").count():
        page.locator("#card").select_option(card.token_label)
    page.locator("#pin").fill(CARD_PIN)
    page.locator("#agent-sign").click()
    page.wait_for_url(re.compile(re.escape(page.chave + next_path) + "$"))


def no_card_pin(page):
    assert CARD_PIN not in page.content(), f"the card's PIN is in {page.url}"


def told_of_the_new_pin(outbox, language: str) -> bool:
    """The latest message to the citizen's mobile is the notice of a PIN change, in their language."""
    return outbox.last(MOBILE).body == notice_message("pin_changed", language=language).body


@pytest.mark.parametrize("locale, lang", LANGS)
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
    page.locator("#id_terms").check()
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


@pytest.mark.parametrize("locale, lang", LANGS)
@pytest.mark.parametrize("state", ["blocked", "locked"])
def test_unlock_a_blocked_or_locked_key_through_the_card_agent(phone, live_server, agent, service, cards, outbox,
                                                               make_citizen, state, locale, lang):
    card = cards["good"]
    card_citizen(card)
    language = CITIZEN_LANGUAGE[lang]
    key = make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE, language=language)
    if state == "blocked":
        identity.block_key(key, by="test")
    else:
        for _ in range(min(policy.get("pin_lock_steps"))):  # the wrong PINs that lock it for a while
            identity.check_login_pin(key, "1357")
        outbox.last(MOBILE)  # the notice of the lock goes out before the code
    key.refresh_from_db()
    assert key.status == state
    page = phone(locale)
    page.chave = live_server.url
    through_the_agent(page, card, next_path="/card/recover/", lang=lang)
    no_card_pin(page)
    status = page.locator("#recover-status")
    assert status.get_attribute("data-status") == state
    assert status.inner_text() == says("Your key is locked or blocked after wrong PINs. Choose a new PIN to unlock it.",
                                       lang)
    page.get_by_role("button", name=says("Send the code", lang)).click()
    page.wait_for_url(re.compile(r"/card/recover/pin/$"))
    no_card_pin(page)
    page.locator("#id_code").fill(outbox.last_code(MOBILE))
    page.locator("#id_new_pin").fill(NEW_PIN)
    page.locator("#id_new_pin_again").fill(NEW_PIN)
    page.locator("#recover-save").click()
    page.wait_for_url(re.compile(r"/card/recover/done/$"))
    assert page.locator("#recover-done").inner_text() == says("Your new PIN is ready", lang)
    no_card_pin(page)
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and key.pin_failures == 0
    assert told_of_the_new_pin(outbox, language)
    assert identity.check_login_pin(key, OLD_PIN).reason == "wrong"
    assert identity.check_login_pin(key, NEW_PIN).ok


@pytest.mark.parametrize("locale, lang", LANGS)
def test_recover_the_forgotten_pin_of_an_active_key_through_the_card_agent(phone, live_server, agent, service,
                                                                           cards, outbox, make_citizen, locale,
                                                                           lang):
    card = cards["good"]
    card_citizen(card)
    language = CITIZEN_LANGUAGE[lang]
    key = make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE, language=language)
    old_hash = key.pin_hash
    page = phone(locale)
    page.chave = live_server.url
    through_the_agent(page, card, next_path="/card/recover/", lang=lang)
    no_card_pin(page)
    status = page.locator("#recover-status")
    assert status.get_attribute("data-status") == "active"
    assert status.inner_text() == says("Choose a new PIN for your key.", lang)
    page.get_by_role("button", name=says("Send the code", lang)).click()
    page.wait_for_url(re.compile(r"/card/recover/pin/$"))
    no_card_pin(page)
    assert page.locator("#code-sent").inner_text() == says("We sent a code by SMS to %(masked)s.", lang,
                                                           masked="+351••••••222")
    code = outbox.last_code(MOBILE)
    task = says("to set a new PIN for your Digital Mobile Key with your Citizen Card (recover or unlock)", lang)
    assert task in outbox.last(MOBILE).body  # the code says what it is for, in the page's language
    page.get_by_label(says("Security code", lang)).fill("000000" if code != "000000" else "111111")
    page.locator("#id_new_pin").fill(NEW_PIN)
    page.locator("#id_new_pin_again").fill(NEW_PIN)
    click_and_wait(page.get_by_role("button", name=says("Save the new PIN", lang)))
    assert page.url == live_server.url + "/card/recover/pin/"
    left = policy.get("code_max_wrong") - 1
    with translation.override(lang):  # "pode tentar mais 2 vezes": a plural, not "vez(es)"
        wrong = ngettext("The code is not correct. You can try %(n)d more time.",
                         "The code is not correct. You can try %(n)d more times.", left) % {"n": left}
    assert wrong in page.locator("#id_code_error").inner_text()
    no_card_pin(page)
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and key.pin_hash == old_hash
    assert outbox.last_code(MOBILE) == code  # no notice of a new PIN
    page.get_by_label(says("Security code", lang)).fill(code)
    page.locator("#id_new_pin").fill(NEW_PIN)
    page.locator("#id_new_pin_again").fill(NEW_PIN)
    page.get_by_role("button", name=says("Save the new PIN", lang)).click()
    page.wait_for_url(re.compile(r"/card/recover/done/$"))
    assert page.locator("#recover-done").inner_text() == says("Your new PIN is ready", lang)
    no_card_pin(page)
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and key.pin_hash != old_hash
    assert told_of_the_new_pin(outbox, language)
    assert identity.check_login_pin(key, OLD_PIN).reason == "wrong"
    assert identity.check_login_pin(key, NEW_PIN).ok


@pytest.mark.parametrize("locale, lang", LANGS)
def test_enter_the_personal_area_with_the_card_and_cancel_the_key_without_a_pin(phone, live_server, agent, service,
                                                                                cards, outbox, make_citizen,
                                                                                locale, lang):
    card = cards["good"]
    card_citizen(card)
    key = make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE, language=CITIZEN_LANGUAGE[lang])
    page = phone(locale)
    page.chave = live_server.url
    page.goto(live_server.url + "/area/")
    page.wait_for_url(re.compile(r"/area/enter/\?next=%2Farea%2F$"))
    expect(page.get_by_role("heading", name=says("Enter the personal area", lang), level=1)).to_be_visible()
    page.get_by_role("link", name=says("Enter with the Citizen Card", lang)).click()
    page.wait_for_url(re.compile(r"/card/\?next=/area/$"))
    through_the_agent(page, card, start=None, next_path="/area/", lang=lang)
    expect(page.get_by_role("heading", name=says("Personal area", lang), level=1)).to_be_visible()
    method = says("Citizen Card", lang)
    assert page.locator("#entered").inner_text() == says("You entered with: %(method)s (assurance level %(level)s).",
                                                         lang, method=method, level=4)
    assert page.locator("#name").inner_text() == card.full_name
    assert page.locator("#status").get_attribute("data-status") == "active"
    no_card_pin(page)
    page.locator("#go-cancel").click()
    page.wait_for_url(re.compile(r"/area/cancel/$"))
    assert page.locator("input[name=pin]").count() == 0  # the card is the proof
    page.get_by_label(says("I understand that my Digital Mobile Key will be cancelled for good and cannot be used "
                           "again.", lang)).check()
    click_and_wait(page.get_by_role("button", name=says("Cancel my key", lang)))
    expect(page.get_by_role("heading", name=says("Your key is cancelled", lang), level=1)).to_be_visible()
    assert Key.objects.get(pk=key.pk).status == KeyStatus.CANCELLED


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
    assert f"{card.full_name} · Counter clerk" in page.locator("#staff-bar").inner_text()
    assert CARD_PIN not in page.content()
    page.get_by_label("NIC, mobile number, e-mail or name").fill("12345678")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#no-results")).to_be_visible()  # the desk works
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
