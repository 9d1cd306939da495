"""Each action of the personal area in a real browser (Debian's chromium driven by Playwright), on
a phone-sized screen, in Portuguese and in English, with the codes read from the outbox.

Fields are found by their labels and buttons and links by their names in the translation
catalogue (``says``: the pt-PT text where a translation exists, the English source otherwise).
"""

import json
import os
import re

import pytest

# Playwright's sync API runs an event loop in this thread; the test thread's own database work
# (fixtures, the outbox worker) is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from chave.federation import services as federation  # noqa: E402
from chave.federation.models import Consent, RelyingParty  # noqa: E402
from chave.identity import services as identity  # noqa: E402
from chave.identity.models import Contact, ContactKind, Key, KeyStatus  # noqa: E402
from chave.login.tests.pages import says  # noqa: E402
from chave.oidc.tests.portal import register_portal  # noqa: E402
from chave.portal.models import NotMeReport  # noqa: E402
from chave.testing.browser import click_and_wait, expect, fits_the_screen, sign_in_with_the_key  # noqa: E402

from .helpers import PHONE, PIN  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LANGS = [("pt-pt", "pt-PT"), ("en", "en-GB")]
NEW_PIN = "5830"


def _enter(page, live_server, outbox, lang):
    """From /area/ (signed out) through the entry and the key's login, back to the area."""
    page.goto(live_server.url + "/area/")
    page.wait_for_url(re.compile(r"/area/enter/"))
    assert page.locator("#enter-card").get_attribute("href") == "/card/?next=/area/"
    fits_the_screen(page)
    page.get_by_role("link", name=says("Sign in with the Digital Mobile Key", lang)).click()
    sign_in_with_the_key(page, outbox, lang=lang, phone=PHONE, pin=PIN)
    page.wait_for_url(re.compile(r"/area/$"))
    expect(page.get_by_role("heading", name=says("Personal area", lang), level=1)).to_be_visible()
    expect(page.locator("#nav-area")).to_be_visible()
    fits_the_screen(page)


@pytest.fixture
def citizen(make_citizen):
    return make_citizen(phone=PHONE, pin=PIN)


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_see_the_key_and_change_the_pin(live_server, phone, citizen, outbox, lang, locale):
    page = phone(locale=locale)
    _enter(page, live_server, outbox, lang)
    assert page.locator("#mobile").inner_text() == "+351••••••678"
    assert page.locator("#status").get_attribute("data-status") == "active"
    assert page.locator("#go-recover").get_attribute("href") == "/card/recover/"
    page.get_by_role("link", name=says("Change your PIN", lang)).click()
    page.wait_for_url(re.compile(r"/area/pin/$"))
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    page.get_by_role("button", name=says("Continue", lang)).click()
    page.wait_for_url(re.compile(r"/area/pin/confirm/$"))
    assert "+351••••••678" in page.locator("#code-sent").inner_text()
    page.get_by_label(says("Security code", lang)).fill(outbox.last_code(PHONE))
    page.get_by_label(says("New PIN", lang), exact=True).fill("1234")
    page.get_by_label(says("New PIN again", lang)).fill("1234")
    click_and_wait(page.get_by_role("button", name=says("Save the new PIN", lang)))  # the same URL: its answer
    alert = " ".join(page.get_by_role("alert").inner_text().split())
    assert says("The PIN cannot be a run of digits such as 1234 or 9876.", lang) in alert
    fits_the_screen(page)
    page.get_by_label(says("Security code", lang)).fill(outbox.last_code(PHONE))
    page.get_by_label(says("New PIN", lang), exact=True).fill(NEW_PIN)
    page.get_by_label(says("New PIN again", lang)).fill(NEW_PIN)
    page.get_by_role("button", name=says("Save the new PIN", lang)).click()
    page.wait_for_url(re.compile(r"/area/$"))
    assert says("Your PIN was changed. We told you so on your contacts.", lang) in page.locator(".messages").inner_text()
    assert identity.check_login_pin(Key.objects.get(pk=citizen.pk), NEW_PIN).ok


def _change_contact(page, lang, link, label, typed, to, outbox):
    page.get_by_role("link", name=says(link, lang)).click()
    page.get_by_label(says(label, lang)).fill(typed)
    page.get_by_role("button", name=says("Send the code", lang)).click()
    page.wait_for_url(re.compile(r"/area/contact/confirm/$"))
    page.get_by_label(says("Security code", lang)).fill(outbox.last_code(to))
    page.get_by_role("button", name=says("Confirm", lang)).click()
    page.wait_for_url(re.compile(r"/area/$"))


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_change_the_mobile_number_and_add_an_email(live_server, phone, citizen, outbox, lang, locale):
    page = phone(locale=locale)
    _enter(page, live_server, outbox, lang)
    _change_contact(page, lang, "Change your mobile number", "New mobile number", "913 000 111", "+351913000111",
                    outbox)
    assert page.locator("#mobile").inner_text() == "+351••••••111"
    _change_contact(page, lang, "Change your e-mail address", "New e-mail address", "maria@example.pt",
                    "maria@example.pt", outbox)
    assert page.locator("#email").inner_text() == "m••••@example.pt"
    assert {c.value for c in Contact.objects.filter(key=citizen)} == {"+351913000111", "maria@example.pt"}
    assert "Chave" in outbox.last(PHONE).body  # the old number was told


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_cancel_the_key(live_server, phone, citizen, outbox, lang, locale):
    page = phone(locale=locale)
    _enter(page, live_server, outbox, lang)
    page.get_by_role("link", name=says("Cancel your key", lang)).click()
    page.wait_for_url(re.compile(r"/area/cancel/$"))
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    click_and_wait(page.get_by_role("button", name=says("Cancel my key", lang)))
    expect(page.locator("#id_confirm_error")).to_be_visible()  # the box was not ticked
    page.get_by_label(says("I understand that my Digital Mobile Key will be cancelled for good and cannot be "
                           "used again.", lang)).check()
    page.get_by_label(says("PIN of the Digital Mobile Key", lang)).fill(PIN)
    click_and_wait(page.get_by_role("button", name=says("Cancel my key", lang)))
    expect(page.get_by_role("heading", name=says("Your key is cancelled", lang))).to_be_visible()
    assert Key.objects.get(pk=citizen.pk).status == KeyStatus.CANCELLED
    assert not Contact.objects.filter(key=citizen, live=True).exists()
    page.goto(live_server.url + "/area/")
    page.wait_for_url(re.compile(r"/area/enter/"))


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_history_and_this_wasnt_me(live_server, phone, citizen, outbox, lang, locale):
    page = phone(locale=locale)
    _enter(page, live_server, outbox, lang)
    page.get_by_role("link", name=says("History: sign-ins and security events", lang)).click()
    page.wait_for_url(re.compile(r"/area/history/$"))
    login_entry = page.locator('li[data-event="login"]').first
    assert login_entry.locator(".level").inner_text() == "3"
    assert login_entry.locator(".method").inner_text() == says("Key, code by SMS", lang)
    fits_the_screen(page)
    login_entry.get_by_role("link", name=says("This wasn't me", lang)).click()
    page.wait_for_url(re.compile(r"/not-me/$"))
    click_and_wait(page.get_by_role("button", name=says("Block my key", lang)))
    expect(page.get_by_role("heading", name=says("Your key is blocked", lang))).to_be_visible()
    assert page.locator("#next-steps a").get_attribute("href") == "/card/recover/"
    assert Key.objects.get(pk=citizen.pk).status == KeyStatus.BLOCKED
    assert NotMeReport.objects.filter(key=citizen).count() == 1
    page.goto(live_server.url + "/area/")
    page.wait_for_url(re.compile(r"/area/enter/"))  # this session was ended too


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_portals_and_revoking_consent(live_server, phone, citizen, outbox, lang, locale):
    portal = register_portal(name="Portal da Saúde (teste)")
    relying_party = RelyingParty.objects.get(client_id=portal.client_id)
    federation.record_consent(citizen.citizen, relying_party, granted=["NomeCompleto", "NIC"], refused=["NIF"])
    page = phone(locale=locale)
    _enter(page, live_server, outbox, lang)
    page.get_by_role("link", name=says("Portals you share data with", lang)).click()
    page.wait_for_url(re.compile(r"/area/portals/$"))
    entry = page.locator(f"#portal-{portal.client_id}")
    assert says("Full name", lang) in entry.inner_text() and says("Tax number (NIF)", lang) in entry.inner_text()
    stop = says("Stop sharing with %(portal)s", lang, portal="Portal da Saúde (teste)")
    click_and_wait(entry.get_by_role("button", name=stop))  # back at the same URL: wait for the new page
    page.wait_for_url(re.compile(r"/area/portals/$"))
    expect(page.locator("#no-portals")).to_be_visible()
    assert not Consent.objects.filter(citizen=citizen.citizen).exists()


@pytest.mark.parametrize(("lang", "locale"), LANGS)
def test_export_my_data(live_server, phone, citizen, outbox, lang, locale, tmp_path):
    page = phone(locale=locale)
    _enter(page, live_server, outbox, lang)
    page.get_by_role("link", name=says("Export your data", lang)).click()
    page.wait_for_url(re.compile(r"/area/export/$"))
    with page.expect_download() as download:
        page.get_by_role("button", name=says("Download my data", lang)).click()
    assert re.fullmatch(r"chave-my-data-\d{8}-\d{6}\.json", download.value.suggested_filename)
    target = tmp_path / "mine.json"
    download.value.save_as(target)
    data = json.loads(target.read_text())
    assert data["citizen"]["full_name"] == "Maria Teste Silva"
    assert data["keys"][0]["contacts"][0]["value"] == PHONE
    assert Key.objects.get(pk=citizen.pk).pin_hash not in target.read_text()
    assert ContactKind.MOBILE in {c["kind"] for c in data["keys"][0]["contacts"]}
