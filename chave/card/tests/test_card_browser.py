"""Online registration and unlocking in a real browser (Debian's chromium, driven by Playwright):
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
from chave.login.tests.test_login_browser import browser, phone  # noqa: E402,F401  (shared fixtures)

from .conftest import CARD_PIN, card_citizen  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MOBILE, EMAIL, NEW_PIN = "+351916000222", "rita@example.pt", "6052"


def through_the_agent(page, card, *, next_path: str, lang: str):
    """From Chave's card page to the agent's PIN page, the PIN typed there, and back to Chave."""
    page.goto(f"{page.chave}/card/?next={next_path}")
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
