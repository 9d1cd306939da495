"""The login in a real browser (Debian's chromium, driven by Playwright), on a phone-sized screen.

Fields are found by their visible label and buttons by role and name, in the words of the
translation catalogue (``says``), so the Portuguese run follows pt-PT as it is translated.
Set ``CHAVE_SHOTS_DIR`` to keep a screenshot of the code page there.
"""

import os
import re
from pathlib import Path

import pytest

# Playwright's sync API runs an event loop in this thread; the test thread's own database work
# (fixtures, the outbox worker) is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.audit.models import AuditEvent  # noqa: E402
from chave.identity.models import ContactKind, mask  # noqa: E402
from chave.testing.browser import click_and_wait, expect, fits_the_screen  # noqa: E402

from .pages import PHONE, PIN, says  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EMAIL = "maria@example.pt"


def _tab_to(page, locator, limit=30):
    """Press Tab until ``locator`` has the focus, as a keyboard user would."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if locator.evaluate("el => el === document.activeElement"):
            return
    raise AssertionError(f"{locator} cannot be reached with Tab")


def _text(page, selector):
    return " ".join(page.locator(selector).inner_text().split())


def test_sms_login_in_english_by_keyboard_only_on_a_phone(live_server, phone, make_citizen, outbox):
    lang = "en"
    key = make_citizen(phone=PHONE, pin=PIN)
    page = phone(locale="pt-PT")  # the browser asks for Portuguese; the citizen switches to English
    page.goto(live_server.url + "/login/")
    assert page.locator("html").get_attribute("lang") == "pt-PT"
    english = page.get_by_role("button", name="English")
    _tab_to(page, english)
    with page.expect_navigation():  # the same URL again: wait for the new page, not the old one
        page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/login/$"))
    assert page.locator("html").get_attribute("lang") == "en"
    fits_the_screen(page)

    identifier = page.get_by_label(says("Mobile number or e-mail", lang))
    _tab_to(page, identifier)
    page.keyboard.type("912 345 678")
    page.keyboard.press("Tab")
    pin = page.get_by_label(says("PIN of the Digital Mobile Key", lang))
    assert pin.evaluate("el => el === document.activeElement")
    page.keyboard.type(PIN)
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/login/code/$"))
    fits_the_screen(page)
    sent = _text(page, "#code-sent")
    assert mask(ContactKind.MOBILE, PHONE) in sent
    assert says("It works until", lang) in _text(page, "#code-time")
    # No resend before the cooldown.
    assert page.get_by_role("button", name=says("Send a new code", lang)).count() == 0
    shots = os.environ.get("CHAVE_SHOTS_DIR")
    if shots:
        Path(shots).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(shots) / "code-page-en.png"), full_page=True)

    code = page.get_by_label(says("Security code", lang))
    _tab_to(page, code)
    page.keyboard.type(outbox.last_code(PHONE))
    page.keyboard.press("Enter")

    page.wait_for_url(re.compile(r"/login/done/$"))
    fits_the_screen(page)
    expect(page.get_by_role("heading", name=says("You are signed in", lang))).to_be_visible()
    assert _text(page, "#who") == "Maria Teste Silva"
    assert _text(page, "#method") == says("Digital Mobile Key, code by SMS", lang)
    assert _text(page, "#level") == "3"
    assert AuditEvent.objects.get(event="login", citizen=key.citizen).detail["level"] == 3


def test_sms_login_in_portuguese_after_switching_language(live_server, phone, make_citizen, outbox):
    lang = "pt-pt"
    make_citizen(phone=PHONE, pin=PIN)
    page = phone(locale="en-GB")
    page.goto(live_server.url + "/login/")
    assert page.locator("html").get_attribute("lang") == "en"
    click_and_wait(page.get_by_role("button", name="Português"))
    page.wait_for_url(re.compile(r"/login/$"))
    assert page.locator("html").get_attribute("lang") == "pt-PT"
    expect(page.get_by_role("heading", name=says("Sign in with your Digital Mobile Key", lang))).to_be_visible()
    fits_the_screen(page)

    # A wrong PIN first: the refusal is shown in Portuguese, the number kept, the PIN not.
    page.get_by_label(says("Mobile number or e-mail", lang)).fill("912345678")
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill("5820")
    click_and_wait(page.get_by_role("button", name=says("Continue", lang)))  # the same URL: its answer's page
    alert = " ".join(page.get_by_role("alert").inner_text().split())
    assert says("The mobile number, e-mail or PIN is not correct. After several wrong PINs the key is locked "
                "for a while, and its owner is told by SMS or e-mail.", lang) in alert
    assert page.get_by_label(says("Mobile number or e-mail", lang)).input_value() == "912345678"
    assert page.get_by_label(says("PIN of the Digital Mobile Key", lang)).input_value() == ""
    fits_the_screen(page)

    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    page.get_by_role("button", name=says("Continue", lang)).click()
    page.wait_for_url(re.compile(r"/login/code/$"))
    fits_the_screen(page)
    assert mask(ContactKind.MOBILE, PHONE) in _text(page, "#code-sent")

    # A code with a letter: the message sits with the field, in Portuguese.
    code_field = page.get_by_label(says("Security code", lang))
    code_field.fill("12a456")
    click_and_wait(page.get_by_role("button", name=says("Sign in", lang), exact=True))  # the same URL
    error = says("The security code has %(n)d digits.", lang, n=6)
    assert _text(page, "#id_code_error") == error
    assert code_field.get_attribute("aria-invalid") == "true"
    assert "id_code_error" in code_field.get_attribute("aria-describedby")

    code_field.fill(outbox.last_code(PHONE))
    page.get_by_role("button", name=says("Sign in", lang), exact=True).click()
    page.wait_for_url(re.compile(r"/login/done/$"))
    fits_the_screen(page)
    expect(page.get_by_role("heading", name=says("You are signed in", lang))).to_be_visible()
    assert _text(page, "#method") == says("Digital Mobile Key, code by SMS", lang)
    assert _text(page, "#level") == "3"


def test_citizen_with_phone_and_email_chooses_email_and_signs_in_at_level_2(live_server, phone, make_citizen, outbox):
    lang = "en"
    key = make_citizen(phone=PHONE, email=EMAIL, pin=PIN)
    page = phone(locale="en-GB")
    page.goto(live_server.url + "/login/")
    page.get_by_label(says("Mobile number or e-mail", lang)).fill(EMAIL)
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    page.get_by_role("button", name=says("Continue", lang)).click()

    page.wait_for_url(re.compile(r"/login/channel/$"))
    fits_the_screen(page)
    sms = page.get_by_label(says("SMS to %s", lang) % mask(ContactKind.MOBILE, PHONE))
    email = page.get_by_label(says("E-mail to %s", lang) % mask(ContactKind.EMAIL, EMAIL))
    expect(sms).to_be_visible()
    expect(email).to_be_visible()
    email.check()
    page.get_by_role("button", name=says("Send the code", lang)).click()

    page.wait_for_url(re.compile(r"/login/code/$"))
    fits_the_screen(page)
    assert mask(ContactKind.EMAIL, EMAIL) in _text(page, "#code-sent")
    page.get_by_label(says("Security code", lang)).fill(outbox.last_code(EMAIL))
    page.get_by_role("button", name=says("Sign in", lang), exact=True).click()

    page.wait_for_url(re.compile(r"/login/done/$"))
    assert _text(page, "#method") == says("Digital Mobile Key, code by e-mail", lang)
    assert _text(page, "#level") == "2"
    assert AuditEvent.objects.get(event="login", citizen=key.citizen).detail["level"] == 2
