"""More of the counter in a real browser (Debian's chromium through Playwright): a foreigner's
registration with the PIN by letter, a PIN handed over sealed (and printed again after the printer
failed), a lost letter cancelled, the supervisor's daily report, the relying-party administrator's
workflow, and the auditor who reads but changes nothing. Each member of staff signs in with
password and TOTP, in English; the state and the audit log are checked after what they saw."""

import datetime as dt
import os
import re

import pytest

# Playwright's sync API runs an event loop in this thread; the test thread's own database work
# (fixtures, the outbox worker) is synchronous and safe.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

from django.test import Client  # noqa: E402

from chave.audit.models import AuditEvent  # noqa: E402
from chave.counter import letters, services  # noqa: E402
from chave.counter.models import CounterAction, Letter, LetterStatus  # noqa: E402
from chave.federation.models import RelyingParty, token_hash  # noqa: E402
from chave.identity import services as identity  # noqa: E402
from chave.identity.models import Citizen, Key, KeyStatus  # noqa: E402
from chave.login.models import LoginTransaction  # noqa: E402
from chave.login.tests.pages import sign_in as citizen_sign_in  # noqa: E402
from chave.oidc import services as registry  # noqa: E402
from chave.testing.browser import click_and_wait, expect  # noqa: E402

from .test_counter_browser import fill_presented, pair_citizen_screen  # noqa: E402
from .test_letters import run_due_tasks, temporary_pin, text_of_pdf  # noqa: E402

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = "+351912345678"
REASON = "Forgot the PIN, asked for a new one in person"


def cells(page, selector: str) -> list[list[str]]:
    """The text of each cell of each row of the table ``selector``'s body."""
    return page.locator(f"{selector} tbody tr").evaluate_all(
        "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))")


def letter_row(page, letter):
    return page.locator(f'tr[data-reference="{letter.reference}"]')


def notice(page) -> str:
    return page.locator("ul.messages").inner_text()


def issue_sealed_pin(desk, live_server, key):
    """The clerk, on the citizen's page, issues a new PIN to be printed here and handed over."""
    desk.goto(f"{live_server.url}/counter/citizen/{key.citizen.pk}/new-pin")
    fill_presented(desk, REASON)
    desk.get_by_label("Printed here and handed over sealed").check()
    click_and_wait(desk.get_by_role("button", name="Issue a new PIN"))
    assert "A new temporary PIN is on its way." in notice(desk)
    return Letter.objects.get()


def test_a_foreigner_registers_with_a_pin_by_letter_and_the_mail_room_posts_it(live_server, signed_in, open_page,
                                                                              clock, outbox, run_worker):
    desk = signed_in("clerk", counter="Loja Porto")
    tablet = pair_citizen_screen(desk, open_page)  # for the code to the mobile number only
    desk.get_by_role("link", name="Register a citizen").click()
    desk.get_by_label("Foreigner, with a passport or residence document").check()
    desk.get_by_label("Foreign document").select_option("residence_permit")
    desk.get_by_label("Issuing country (2 letters)").fill("br")
    desk.get_by_label("Document number").fill("ab 123 456")
    desk.get_by_label("Full name, as on the document").fill("João da Silva Souza")
    desk.get_by_label("Given names").fill("João")
    desk.get_by_label("Family names").fill("da Silva Souza")
    desk.get_by_label("Date of birth").fill("1990-01-02")
    desk.get_by_label("Document valid until").fill((clock.today() + dt.timedelta(days=700)).isoformat())
    desk.get_by_label("Mobile number").fill("912 345 678")
    desk.get_by_label("A temporary PIN by letter").check()
    desk.get_by_label("Postal address (PIN by letter)").fill("Rua do Sol 5\n4000-001 Porto")
    desk.get_by_label("The citizen has read the terms of use and accepts them").check()
    desk.get_by_role("button", name="Register").click()
    # Without the NIF a foreigner is not registered; what was typed stays.
    expect(desk.locator("#id_nif_error")).to_be_visible()
    assert desk.get_by_label("Document number").input_value() == "ab 123 456"
    assert not Citizen.objects.exists()
    desk.get_by_label("NIF (tax number)").fill("123456789")
    desk.get_by_role("button", name="Register").click()
    desk.wait_for_url(re.compile(r"/counter/registrations/\d+/$"))
    assert "by letter" in desk.locator('li[data-step="pin"]').inner_text()

    desk.locator('li[data-step="mobile"]').get_by_role("button").click()
    tablet.locator("#screen-task").wait_for()
    tablet.get_by_label("Security code").fill(outbox.last_code(PHONE))
    tablet.get_by_role("button", name="Confirm").click()
    desk.locator('li[data-step="mobile"] .done').wait_for()
    desk.get_by_role("button", name="Complete the registration").click()
    desk.wait_for_url(re.compile(r"/counter/citizen/\d+/$"))
    assert desk.locator("#key-status").get_attribute("data-status") == "active"
    assert "Residence permit BR AB123456" in desk.locator("#citizen-facts").inner_text()
    assert desk.locator("#pin-state").inner_text().startswith("Temporary, valid until")
    letter = Letter.objects.get()
    assert letter_row(desk, letter).locator(".letter-status").inner_text() == "Being produced"
    citizen = Citizen.objects.get()
    assert (citizen.doc_type, citizen.doc_country, citizen.doc_number, citizen.nif) == (
        "residence_permit", "BR", "AB123456", "123456789")
    action = CounterAction.objects.get()
    assert (action.kind, action.counter, action.document_type, action.document_country, action.document_number,
            action.detail["delivery"]) == ("register", "Loja Porto", "residence_permit", "BR", "AB123456", "letter")

    # The clerk finds the citizen again by the foreign document.
    desk.get_by_role("link", name="Find a citizen").click()
    desk.get_by_label("Or a foreign document: type").select_option("residence_permit")
    desk.get_by_label("Issuing country (2 letters)").fill("BR")
    desk.get_by_label("Document number").fill("AB123456")
    desk.get_by_role("button", name="Find").click()
    assert desk.locator("#results").inner_text().startswith("João da Silva Souza")

    run_worker()  # the letter is produced
    room = signed_in("mailroom", counter="")
    assert "Ready to print: 1." in room.locator("#letter-counts").inner_text()
    room.get_by_role("button", name="Make a print batch").click()
    with room.expect_download() as download:
        room.get_by_role("link", name="Download PDF").click()
    text = text_of_pdf(open(download.value.path(), "rb").read())[0]
    for expected in ("João da Silva Souza", "Rua do Sol 5", "4000-001 Porto", letter.reference):
        assert expected in text, expected
    click_and_wait(room.get_by_role("button", name="Mark as posted"))
    assert "marked as posted (1 letters)" in notice(room)
    assert Letter.objects.get().status == LetterStatus.POSTED
    # The foreigner signs in with the letter's PIN and must choose their own first.
    assert citizen_sign_in(Client(), pin=temporary_pin(text)).status_code == 302
    assert LoginTransaction.objects.get().must_change_pin


def test_a_pin_handed_over_sealed_is_printed_here_and_recorded_as_handed_over(live_server, signed_in, make_citizen,
                                                                              run_worker, settings, tmp_path):
    settings.CHAVE_COUNTER_PRINTER, settings.CHAVE_COUNTER_PRINT_DIR = "spool", tmp_path
    key = make_citizen(nic="12345678", phone=PHONE)
    desk = signed_in("clerk", counter="Loja Aveiro")
    letter = issue_sealed_pin(desk, live_server, key)
    assert letter.delivery == "counter" and letter.address.endswith("Loja Aveiro")
    assert letter_row(desk, letter).locator(".letter-status").inner_text() == "Being produced"
    assert not letter_row(desk, letter).get_by_role("button", name="Handed over sealed").count()

    run_worker()  # the job prints the mailer on the counter's printer
    desk.reload()
    row = letter_row(desk, letter)
    assert row.locator(".letter-status").inner_text() == "Printed at the counter, to hand over"
    printed = tmp_path / "Loja-Aveiro" / f"{letter.reference}.pdf"
    pin = temporary_pin(text_of_pdf(printed.read_bytes())[0])
    assert pin not in desk.content()
    click_and_wait(row.get_by_role("button", name="Handed over sealed"))
    assert "the sealed PIN mailer was handed over" in notice(desk)
    row = letter_row(desk, letter)
    assert row.locator(".letter-status").inner_text() == "Handed over sealed"
    assert not row.get_by_role("button", name="Handed over sealed").count()
    assert Letter.objects.get().status == LetterStatus.HANDED
    handed = AuditEvent.objects.get(event="letter.handed")
    assert (handed.detail["staff"], handed.detail["counter"]) == (desk.login.username, "Loja Aveiro")
    assert CounterAction.objects.get().detail == {"letter": letter.reference, "delivery": "counter"}
    assert citizen_sign_in(Client(), pin=pin).status_code == 302  # the mailer's PIN opens the key


def posted_letter(key, clerk, room, run_worker):
    """A new PIN by post for ``key``, produced, printed by the mail room and posted: (letter, PIN)."""
    letter = letters.issue_new_pin(clerk, key, services.Presented("cc", "PT", "12345678", REASON),
                                   address="Rua das Flores 12\n1200-195 Lisboa")
    run_worker()
    batch = letters.make_batch(room)
    pin = temporary_pin(text_of_pdf(letters.batch_pdf(room, batch))[0])
    letters.mark_posted(room, batch)
    return letter, pin


def press_cancel(desk, letter, reason, link="Lost in the post"):
    """The clerk opens the letter's cancellation page from the citizen's page (unless already on
    it, after a refusal), fills it in and presses the button; then confirms, when asked."""
    if desk.locator("#letters").count():
        letter_row(desk, letter).get_by_role("link", name=link).click()
    fill_presented(desk, reason)
    click_and_wait(desk.get_by_role("button", name="Cancel the letter"))  # the answer's page is looked at next
    if desk.locator("#confirm").count():
        assert "stops working" in desk.locator("#consequences").inner_text()
        click_and_wait(desk.locator("#confirm"))


def cancel_lost_letter(desk, letter, reason):
    press_cancel(desk, letter, reason)
    assert "The letter is cancelled and its PIN no longer works." in notice(desk)
    assert letter_row(desk, letter).locator(".letter-status").inner_text() == "Cancelled"
    assert not letter_row(desk, letter).get_by_role("link", name="Lost in the post").count()


def test_letters_lost_in_the_post_are_cancelled_and_their_pins_open_nothing(live_server, signed_in, make_staff,
                                                                            make_citizen, run_worker):
    key = make_citizen(nic="12345678", phone=PHONE)
    clerk, room = make_staff("clerk").staff, make_staff("mailroom", counter="").staff
    first, first_pin = posted_letter(key, clerk, room, run_worker)
    second, second_pin = posted_letter(key, clerk, room, run_worker)  # the first never came; asked again

    desk = signed_in("clerk", counter="Loja Aveiro")
    desk.goto(f"{live_server.url}/counter/citizen/{key.citizen.pk}/")
    assert [row[:2] for row in cells(desk, "#letters")] == [[second.reference, "Posted"], [first.reference, "Posted"]]
    # The first letter may yet turn up in someone's hands: cancelled. The second one's PIN stays.
    press_cancel(desk, first, "lost")
    assert "The reason needs at least 10 characters" in desk.locator(".error-summary").inner_text()
    assert first.reference in desk.locator(".who-for").inner_text()  # that letter's page, kept as typed
    assert desk.get_by_label("Reason").input_value() == "lost"
    assert Letter.objects.get(pk=first.pk).status == LetterStatus.POSTED
    cancel_lost_letter(desk, first, "The first letter never arrived")
    assert desk.locator("#pin-state").inner_text().startswith("Temporary, valid until")
    assert citizen_sign_in(Client(), pin=second_pin).status_code == 302
    # The second is lost too: its PIN no longer opens the key.
    cancel_lost_letter(desk, second, "The second letter never arrived either")
    assert desk.locator("#pin-state").inner_text() == "None: a new PIN must be issued"

    assert {letter.status for letter in Letter.objects.all()} == {LetterStatus.CANCELLED}
    assert Key.objects.get().pin_hash == ""
    for pin in (first_pin, second_pin):
        assert citizen_sign_in(Client(), pin=pin).status_code != 302
    cancelled = CounterAction.objects.filter(kind="letter_cancel").order_by("at", "id")
    assert [(a.staff, a.reason, a.detail) for a in cancelled] == [
        (desk.login.staff, "The first letter never arrived", {"letter": first.reference}),
        (desk.login.staff, "The second letter never arrived either", {"letter": second.reference})]
    assert [e.detail["pin_voided"] for e in AuditEvent.objects.filter(event="letter.cancel").order_by("at", "id")] == [
        False, True]


def test_a_failed_print_is_shown_and_printed_again_once_the_printer_is_fixed(live_server, signed_in, make_citizen,
                                                                             broken_printer, run_worker, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "counter_print_backoff_seconds": [60]}
    key = make_citizen(nic="12345678", phone=PHONE)
    desk = signed_in("clerk", counter="Loja Aveiro")
    letter = issue_sealed_pin(desk, live_server, key)

    run_worker()  # the printer refuses it: another try in a minute
    desk.reload()
    retry = letter_row(desk, letter).locator(".print-retry")
    assert "The printer did not take it; trying again at" in retry.inner_text()
    assert "(failed 1 time)" in retry.inner_text()
    run_due_tasks(run_worker, rounds=1)  # the retry fails too: no more tries
    desk.reload()
    row = letter_row(desk, letter)
    assert row.locator(".letter-status").inner_text().startswith("Printing failed")
    assert "Check the printer, then print it again, or cancel the letter." in row.locator(".print-error").inner_text()
    assert not row.locator(".print-retry").count()

    broken_printer.fix()
    click_and_wait(row.get_by_role("button", name="Print again"))
    assert "on its way to the printer again" in notice(desk)
    assert letter_row(desk, letter).locator(".letter-status").inner_text() == "Being produced"
    run_worker()
    desk.reload()
    row = letter_row(desk, letter)
    assert row.locator(".letter-status").inner_text() == "Printed at the counter, to hand over"
    assert not row.get_by_role("button", name="Print again").count()
    assert (broken_printer.folder / f"{letter.reference}.pdf").exists()
    assert [e.outcome for e in AuditEvent.objects.filter(event="letter.print").order_by("at", "id")] == [
        "retry", "failed"]
    assert AuditEvent.objects.get(event="letter.print_again").detail["staff"] == desk.login.username


def test_the_supervisor_reads_the_daily_report_per_counter(live_server, signed_in, make_staff, make_citizen, clock):
    def doc(nic):
        return services.Presented("cc", "PT", nic, "Citizen identified with their card")

    def blocked(nic):
        key = make_citizen(nic=nic, phone=None, email=f"c{nic}@example.pt")
        identity.block_key(key, by="test")
        key.refresh_from_db()
        return key

    aveiro, porto = make_staff("clerk", counter="Loja Aveiro").staff, make_staff("clerk", counter="Loja Porto").staff
    yesterday = clock.today() - dt.timedelta(days=1)
    clock.travel(dt.timedelta(days=-1))
    services.unlock(aveiro, blocked("11111111"), doc("11111111"))
    clock.travel(dt.timedelta(days=1))
    unlock = services.unlock(aveiro, blocked("12345678"), doc("12345678"))
    letters.issue_new_pin(aveiro, make_citizen(nic="22222222", phone=None, email="b@example.pt"), doc("22222222"),
                          address="Rua A 1\n1000-001 Lisboa")
    new_pin = CounterAction.objects.get(kind="new_pin")
    services.reverse(make_staff("supervisor", counter="Loja Aveiro").staff, new_pin, "Not the holder, after all")
    cancel = services.cancel(porto, make_citizen(nic="33333333", phone=None, email="c@example.pt"), doc("33333333"))

    boss = signed_in("supervisor", counter="Loja Aveiro")
    click_and_wait(boss.get_by_role("link", name="Daily report"))
    from django.utils import formats, translation

    with translation.override("en"):
        today = formats.date_format(clock.today(), "DATE_FORMAT")
    assert boss.locator("main h1").inner_text() == f"Counter actions on {today}"
    assert cells(boss, "#report") == [["Loja Aveiro", "New PIN by letter", "1", "1"],
                                      ["Loja Aveiro", "Unlock", "1", "0"],
                                      ["Loja Porto", "Cancellation", "1", "0"]]
    # Today's actions, each with its clerk, document and reason; only this counter's unlock may
    # still be reversed (the new PIN is reversed already, a cancellation never is).
    listed = boss.locator("#day-actions")
    assert "Not the holder, after all" in listed.locator(f'li[data-action="{new_pin.pk}"] .reversed').inner_text()
    assert listed.locator(f'li[data-action="{unlock.pk}"]').get_by_role("button", name="Reverse").count() == 1
    assert listed.locator(f'li[data-action="{cancel.pk}"]').get_by_role("button").count() == 0
    assert "Loja Porto · Cancellation" in listed.locator(f'li[data-action="{cancel.pk}"]').inner_text()

    boss.get_by_label("Day").fill(yesterday.isoformat())
    boss.get_by_role("button", name="Show").click()
    boss.wait_for_url(re.compile(rf"\?day={yesterday.isoformat()}$"))
    assert cells(boss, "#report") == [["Loja Aveiro", "Unlock", "1", "0"]]
    assert boss.locator("#day-actions").get_by_role("button", name="Reverse").count() == 0  # not today's


def fill_portal_request(page, name, *, auth_method="private_key_jwt", redirect_uri="https://saude.gov.pt/cb"):
    page.get_by_label("Entity name").fill(name)
    page.get_by_label("Entity's tax number (NIF)").fill("600084779")
    page.get_by_label("Contact e-mail").fill("dev@saude.gov.pt")
    page.get_by_label("Redirect URIs (one per line)", exact=True).fill(redirect_uri)
    page.locator('input[name="allowed_attributes"][value="NIC"]').check()
    page.locator('input[name="allowed_attributes"][value="NomeCompleto"]').check()
    page.locator('input[name="mandatory_attributes"][value="NIC"]').check()
    page.get_by_label("Minimum assurance level").select_option("3")
    page.get_by_label("Client authentication").select_option(auth_method)
    if auth_method == "private_key_jwt":
        page.get_by_label("JWKS URI (private_key_jwt)").fill("https://saude.gov.pt/jwks.json")
    page.get_by_role("button", name="Record the request").click()


def decide(page, reason, button):
    form = page.locator("#decide")
    form.get_by_label("Reason").fill(reason)
    click_and_wait(form.get_by_role("button", name=button))


def test_the_rp_administrator_reviews_suspends_reinstates_and_changes_keys(live_server, signed_in):
    admin = signed_in("rp-admin", counter="")
    admin.get_by_role("link", name="Record a portal's request").click()
    fill_portal_request(admin, "Portal da Saúde", redirect_uri="http://saude.gov.pt/cb")
    expect(admin.locator("#id_redirect_uris_error")).to_be_visible()  # not https: nothing recorded
    assert not RelyingParty.objects.exists()
    admin.get_by_label("Redirect URIs (one per line)", exact=True).fill("https://saude.gov.pt/cb")
    click_and_wait(admin.get_by_role("button", name="Record the request"))
    assert admin.locator("#rp-state").get_attribute("data-state") == "requested"
    assert not admin.locator("#client-secret").count()  # private_key_jwt: no secret
    party = RelyingParty.objects.get()
    assert (party.min_level, party.allowed_attributes, party.mandatory_attributes) == (
        3, ["NIC", "NomeCompleto"], ["NIC"])

    decide(admin, "ok", "Approve")  # a reason of a few words is required
    expect(admin.locator("#id_decide-reason_error")).to_be_visible()
    assert RelyingParty.objects.get().state == "requested"
    for reason, button, state in (("Public entity, NIF checked", "Approve", "approved"),
                                  ("Security incident reported", "Suspend", "suspended"),
                                  ("Incident closed by the entity", "Reinstate", "approved")):
        decide(admin, reason, button)
        assert "Decision recorded." in notice(admin)
        assert admin.locator("#rp-state").get_attribute("data-state") == state
        assert RelyingParty.objects.get().state == state

    keys = admin.locator("#keys")
    keys.get_by_label("JWKS URI").fill("https://saude.gov.pt/jwks-2025.json")
    keys.get_by_label("Reason").fill("Yearly key rotation")
    click_and_wait(keys.get_by_role("button", name="Change the keys"))
    assert "The portal's keys are changed." in notice(admin)
    assert "https://saude.gov.pt/jwks-2025.json" in admin.locator("dl.facts").inner_text()
    assert RelyingParty.objects.get().jwks_uri == "https://saude.gov.pt/jwks-2025.json"

    by = f"Staff {admin.login.username} ({admin.login.username})"
    history = [row[1:] for row in cells(admin, "#rp-history")]
    assert history == [["keys changed", by, "Yearly key rotation — https://saude.gov.pt/jwks-2025.json"],
                       ["reinstated", by, "Incident closed by the entity"],
                       ["suspended", by, "Security incident reported"],
                       ["approved", by, "Public entity, NIF checked"],
                       ["requested", by, ""]]
    assert AuditEvent.objects.get(event="rp.suspended").detail["by"] == f"staff:{admin.login.username}"

    admin.get_by_role("link", name="Relying parties").click()
    admin.get_by_label("State").select_option("suspended")
    click_and_wait(admin.get_by_role("button", name="Show"))
    assert admin.locator("#parties").inner_text().count("Portal da Saúde") == 0
    admin.get_by_label("State").select_option("approved")
    click_and_wait(admin.get_by_role("button", name="Show"))
    assert admin.locator(f'tr[data-client-id="{party.client_id}"] .rp-state').inner_text() == "approved"


def test_the_rp_administrator_sees_a_client_secret_once_and_rotates_it(live_server, signed_in):
    admin = signed_in("rp-admin", counter="")
    admin.get_by_role("link", name="Record a portal's request").click()
    fill_portal_request(admin, "Portal das Finanças", auth_method="client_secret_basic")
    first = admin.locator("#client-secret code").inner_text()
    party = RelyingParty.objects.get()
    assert party.client_secret_hash == token_hash(first)
    admin.goto(f"{live_server.url}/counter/rp/{party.client_id}/")
    assert not admin.locator("#client-secret").count() and first not in admin.content()  # shown once only

    rotate = admin.locator("#rotate")
    rotate.get_by_label("Reason").fill("Secret leaked in a log")
    rotate.get_by_role("button", name="Rotate the secret").click()
    second = admin.locator("#client-secret code").inner_text()
    assert second != first and RelyingParty.objects.get().client_secret_hash == token_hash(second)
    admin.goto(f"{live_server.url}/counter/rp/{party.client_id}/")
    assert second not in admin.content()
    assert cells(admin, "#rp-history")[0][1:] == ["client secret rotated",
                                                  f"Staff {admin.login.username} ({admin.login.username})",
                                                  "Secret leaked in a log"]


def test_the_auditor_reads_without_action_buttons_and_a_forged_post_is_refused(live_server, signed_in, make_staff,
                                                                               make_citizen):
    key = make_citizen(nic="12345678", phone=PHONE)
    clerk = make_staff("clerk", counter="Loja Aveiro").staff
    letter = letters.issue_new_pin(clerk, key, services.Presented("cc", "PT", "12345678", REASON),
                                   address="Rua das Flores 12\n1200-195 Lisboa")
    identity.block_key(key, by="test")
    action = CounterAction.objects.get()
    party = registry.register_relying_party(name="Portal das Finanças", entity_nif="600084779",
                                            contact_email="dev@financas.gov.pt",
                                            redirect_uris=["https://financas.gov.pt/cb"],
                                            jwks_uri="https://financas.gov.pt/jwks").relying_party

    auditor = signed_in("auditor", counter="")
    bar = auditor.locator("#staff-bar")
    for link in ("Find a citizen", "Daily report", "Relying parties"):
        assert bar.get_by_role("link", name=link).count() == 1
    for link in ("Register a citizen", "Citizen screen", "Letters"):
        assert bar.get_by_role("link", name=link).count() == 0
    auditor.get_by_label("NIC, mobile number, e-mail or name").fill("12345678")
    auditor.get_by_role("button", name="Find").click()
    click_and_wait(auditor.locator("#results a"))
    assert auditor.locator("#key-status").get_attribute("data-status") == "blocked"
    expect(letter_row(auditor, letter)).to_be_visible()
    assert REASON in auditor.locator("#actions").inner_text()
    history = auditor.locator("#history").inner_text()
    assert "Key blocked" in history and "key.blocked" not in history  # in words
    actions = 'main form[method="post"]:not(:has(#staff-logout))'  # every form that changes something
    assert auditor.locator(actions).count() == 0 and auditor.locator("details").count() == 0
    click_and_wait(auditor.get_by_role("link", name="Daily report"))
    assert cells(auditor, "#report") == [["Loja Aveiro", "New PIN by letter", "1", "0"]]
    assert auditor.locator(actions).count() == 0 and auditor.get_by_role("button", name="Reverse").count() == 0
    click_and_wait(auditor.get_by_role("link", name="Relying parties"))
    assert auditor.locator("#rp-new").count() == 0
    click_and_wait(auditor.get_by_role("link", name="Portal das Finanças"))
    assert auditor.locator("#rp-state").get_attribute("data-state") == "requested"
    assert auditor.locator(actions).count() == 0

    # The auditor forges a form into the page, with the page's own CSRF token: refused by role.
    citizen = f"/counter/citizen/{key.citizen.pk}"
    auditor.evaluate("""([action, fields]) => {
        const form = document.createElement("form");
        form.method = "post"; form.action = action;
        for (const [name, value] of Object.entries(fields)) {
            const input = document.createElement("input");
            input.name = name; input.value = value; form.appendChild(input);
        }
        form.appendChild(document.querySelector("#staff-bar input[name=csrfmiddlewaretoken]").cloneNode());
        document.body.appendChild(form); form.submit();
    }""", [f"{citizen}/unlock", {"unlock-presented_type": "cc", "unlock-presented_country": "PT",
                                 "unlock-presented_number": "12345678", "unlock-reason": "I want to unlock it"}])
    auditor.locator("#forbidden").wait_for()
    assert "Your role does not include this page." in auditor.locator("main").inner_text()
    # And the other actions, posted from the same signed-in browser with its CSRF token.
    token = auditor.locator("#staff-bar input[name=csrfmiddlewaretoken]").get_attribute("value")
    forged = [f"{citizen}/new-pin", f"{citizen}/cancel", f"{citizen}/letters/{letter.pk}/cancel",
              f"{citizen}/contact", "/counter/register", "/counter/desk/screen", f"/counter/actions/{action.pk}/reverse",
              "/counter/letters/batch", f"/counter/rp/{party.client_id}/decide", "/counter/rp/request"]
    for path in forged:
        response = auditor.request.post(live_server.url + path, form={
            "csrfmiddlewaretoken": token, "reason": "Trying it anyway", "decide-decision": "approve",
            "decide-reason": "Trying it anyway"}, max_redirects=0)
        assert response.status == 403 and 'id="forbidden"' in response.text(), path  # the role's refusal

    assert Key.objects.get().status == KeyStatus.BLOCKED
    assert Letter.objects.get().status == LetterStatus.QUEUED and Letter.objects.get().batch is None
    assert list(CounterAction.objects.all()) == [action] and CounterAction.objects.get().reversed_at is None
    assert RelyingParty.objects.get().state == "requested"
    refused = AuditEvent.objects.filter(event="counter.refused")
    assert refused.count() == 1 + len(forged)
    assert {e.detail["staff"] for e in refused} == {auditor.login.username}
