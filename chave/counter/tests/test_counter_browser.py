"""The counter in a real browser (Debian's chromium through Playwright): the clerk's desk, the
citizen screen on a second device, the mail room, the supervisor and the relying-party
administrator, each signed in with password and TOTP. In English (the browser asks for it)."""

import io
import os
import re

import pytest

# Playwright's sync API runs an event loop in this thread; the test thread's own database work
# (fixtures, the outbox worker) is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from pypdf import PdfReader  # noqa: E402

from chave.counter.models import CounterAction, Letter  # noqa: E402
from chave.federation.models import RelyingParty  # noqa: E402
from chave.identity import services as identity  # noqa: E402
from chave.identity.models import Key, KeyStatus  # noqa: E402
from chave.oidc import services as registry  # noqa: E402
from chave.testing.browser import click_and_wait, expect  # noqa: E402

from .test_registration import EMAIL, PHONE, PIN, portuguese  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
TABLET = {"width": 800, "height": 1100}


def fill_presented(section, reason):
    section.get_by_label("Document presented").select_option("cc")
    section.get_by_label("Issuing country (2 letters)").fill("PT")
    section.get_by_label("Document number").fill("12345678")
    section.get_by_label("Reason").fill(reason)


def pair_citizen_screen(desk, open_page):
    desk.get_by_role("link", name="Citizen screen").click()
    desk.get_by_role("button", name="Pair a citizen screen").click()
    link = desk.locator("#pairing-link").get_attribute("href")
    tablet = open_page(viewport=TABLET, is_mobile=True, has_touch=True)
    tablet.goto(link)
    tablet.get_by_role("button", name="Use this device").click()
    tablet.wait_for_url(re.compile(r"/counter/screen/$"))
    expect(tablet.locator("#screen-idle")).to_be_visible()
    return tablet


def test_register_at_the_desk_with_codes_and_pin_on_the_citizen_screen(live_server, signed_in, open_page, clock,
                                                                       outbox):
    portuguese(clock)
    desk = signed_in("clerk", counter="Loja Aveiro")
    tablet = pair_citizen_screen(desk, open_page)

    desk.get_by_role("link", name="Register a citizen").click()
    desk.get_by_label("Portuguese, with the Citizen Card").check()
    desk.get_by_label("NIC (civil identification number)").fill("12345678")
    desk.get_by_label("Mobile number").fill("912 345 678")
    desk.get_by_label("E-mail address").fill(EMAIL)
    desk.get_by_label("The citizen chooses it on the citizen screen").check()
    desk.get_by_label("The citizen has read the terms of use and accepts them").check()
    desk.get_by_role("button", name="Register").click()
    desk.wait_for_url(re.compile(r"/counter/registrations/\d+/$"))

    for kind, destination in (("mobile", PHONE), ("email", EMAIL)):
        desk.locator(f'li[data-step="{kind}"]').get_by_role("button").click()
        expect(desk.locator("#turn-waiting")).to_be_visible()
        tablet.locator("#screen-task").wait_for()  # the idle screen refreshes itself
        tablet.get_by_label("Security code").fill(outbox.last_code(destination))
        tablet.get_by_role("button", name="Confirm").click()
        expect(tablet.locator("#screen-thanks")).to_be_visible()
        # The desk's page refreshes itself until the citizen is done.
        desk.locator(f'li[data-step="{kind}"] .done').wait_for()

    desk.get_by_role("button", name="Ask the citizen to choose the PIN").click()
    tablet.locator("#screen-task").wait_for()
    tablet.get_by_label("Your new PIN").fill(PIN)
    tablet.get_by_label("The same PIN again").fill(PIN)
    tablet.get_by_role("button", name="Confirm").click()
    expect(tablet.locator("#screen-thanks")).to_be_visible()
    desk.locator('li[data-step="pin"] .done').wait_for()
    assert PIN not in desk.content()

    desk.get_by_role("button", name="Complete the registration").click()
    desk.wait_for_url(re.compile(r"/counter/citizen/\d+/$"))
    assert desk.locator("#key-status").get_attribute("data-status") == "active"
    key = Key.objects.get()
    assert key.status == KeyStatus.ACTIVE and not key.pin_is_temporary


def test_find_unlock_new_pin_letter_and_the_mail_room(live_server, signed_in, make_citizen, run_worker):
    key = make_citizen(nic="12345678", phone=PHONE)
    identity.block_key(key, by="test")
    desk = signed_in("clerk", counter="Loja Aveiro")
    desk.get_by_label("NIC, mobile number, e-mail or name").fill("912345678")
    desk.get_by_role("button", name="Find").click()
    desk.locator("#results a").click()
    expect(desk.locator("#key-status")).to_have_attribute("data-status", "blocked")

    desk.get_by_role("link", name="Unlock the key").click()
    fill_presented(desk, "short")
    desk.get_by_role("button", name="Unlock the key").click()
    expect(desk.locator(".error-summary")).to_be_visible()  # the reason is too short
    fill_presented(desk, "Forgot the PIN, identified with the card")
    desk.get_by_role("button", name="Unlock the key").click()
    expect(desk.locator("#key-status")).to_have_attribute("data-status", "active")

    desk.get_by_role("link", name="New PIN by letter").click()
    fill_presented(desk, "Forgot the PIN, asked for a new one")
    desk.get_by_label("By post to the citizen's address").check()
    desk.get_by_label("Postal address").fill("Rua das Flores 12\n1200-195 Lisboa")
    click_and_wait(desk.get_by_role("button", name="Issue a new PIN"))
    reference = Letter.objects.get().reference
    expect(desk.locator(f'tr[data-reference="{reference}"]')).to_be_visible()

    run_worker()
    room = signed_in("mailroom", counter="")
    assert "Ready to print: 1." in room.locator("#letter-counts").inner_text()
    room.get_by_role("button", name="Make a print batch").click()
    with room.expect_download() as download:
        room.get_by_role("link", name="Download PDF").click()
    text = PdfReader(io.BytesIO(open(download.value.path(), "rb").read())).pages[0].extract_text()
    assert reference in text and "Maria Teste Silva" in text
    click_and_wait(room.get_by_role("button", name="Mark as posted"))
    assert Letter.objects.get().status == "posted"
    assert not room.get_by_role("link", name="Download PDF").count()


def test_change_contact_and_cancel_at_the_desk(live_server, signed_in, open_page, make_citizen, outbox):
    key = make_citizen(nic="12345678", phone=PHONE)
    desk = signed_in("clerk")
    tablet = pair_citizen_screen(desk, open_page)
    desk.goto(f"{live_server.url}/counter/citizen/{key.citizen.pk}/")
    desk.get_by_role("link", name="Change the mobile number or e-mail").click()
    fill_presented(desk, "The citizen has a new phone")
    desk.get_by_label("Contact", exact=True).select_option("mobile")
    desk.get_by_label("New mobile number or e-mail address").fill("936 000 111")
    desk.get_by_role("button", name="Send the code").click()
    expect(desk.locator("#turn-waiting")).to_be_visible()
    tablet.locator("#screen-task").wait_for()
    tablet.get_by_label("Security code").fill(outbox.last_code("+351936000111"))
    tablet.get_by_role("button", name="Confirm").click()
    expect(tablet.locator("#screen-thanks")).to_be_visible()  # the code is taken
    desk.locator("#turn-waiting").wait_for(state="detached")
    assert key.contacts.get(kind="mobile").value == "+351936000111"

    desk.get_by_role("link", name="Cancel the key").click()
    fill_presented(desk, "The citizen no longer wants the key")
    desk.get_by_role("button", name="Cancel the key").click()
    expect(desk.get_by_role("button", name="Yes, cancel the key")).to_be_visible()
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE  # not before it is confirmed
    desk.get_by_role("button", name="Yes, cancel the key").click()
    expect(desk.locator("#key-status")).to_have_attribute("data-status", "cancelled")
    assert [a.kind for a in CounterAction.objects.order_by("at", "id")] == ["contact", "cancel"]


def test_supervisor_reverses_and_rp_administrator_approves(live_server, signed_in, make_staff, make_citizen):
    from chave.counter import services

    key = make_citizen(nic="12345678")
    identity.block_key(key, by="test")
    services.unlock(make_staff("clerk", counter="Loja Aveiro").staff, key,
                    services.Presented("cc", "PT", "12345678", "Identified with the card"))
    boss = signed_in("supervisor", counter="Loja Aveiro")
    boss.get_by_role("link", name="Daily report").click()
    assert "Loja Aveiro" in boss.locator("#report").inner_text()
    boss.get_by_label("Reason").fill("The clerk did not check the document")
    boss.get_by_role("button", name="Reverse").click()
    expect(boss.locator(".reversed")).to_be_visible()
    assert Key.objects.get(pk=key.pk).status == KeyStatus.BLOCKED

    party = registry.register_relying_party(name="Portal das Finanças", entity_nif="600084779",
                                            contact_email="dev@financas.gov.pt",
                                            redirect_uris=["https://financas.gov.pt/cb"],
                                            jwks_uri="https://financas.gov.pt/jwks").relying_party
    admin = signed_in("rp-admin", counter="")
    admin.get_by_role("link", name="Portal das Finanças").click()
    admin.get_by_label("Reason").first.fill("Public entity, NIF checked")
    admin.get_by_role("button", name="Approve").click()
    expect(admin.locator("#rp-state")).to_have_attribute("data-state", "approved")
    expect(admin.locator("#rp-history")).to_contain_text("Public entity, NIF checked")
    assert RelyingParty.objects.get(pk=party.pk).state == "approved"
