"""Activation letters: a new temporary PIN goes sealed to the job, out in a PDF, and nowhere else."""

import io
import re

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test import Client
from django.utils import translation
from pypdf import PdfReader

from chave import formats
from chave.audit.models import AuditEvent
from chave.counter import letters
from chave.counter.models import CounterAction, Letter, LetterStatus
from chave.identity.models import Key
from chave.login.models import LoginTransaction
from chave.login.tests.pages import sign_in

pytestmark = pytest.mark.django_db(transaction=True)  # the worker runs

REASON = "Forgot the PIN, asked for a new one in person"
ADDRESS = "Rua das Flores 12, 3.º Esq.\n1200-195 Lisboa\nPortugal"


def ask_new_pin(client, key, nic="12345678"):
    return client.post(f"/counter/citizen/{key.citizen.pk}/new-pin", {
        "pin-presented_type": "cc", "pin-presented_country": "PT", "pin-presented_number": nic,
        "pin-reason": REASON, "pin-delivery": "post", "pin-address": ADDRESS})


def valid_until(letter) -> str:
    """The letter's valid-until date as the letter writes it, in Portuguese and English."""
    from django.utils import formats, timezone, translation

    day = timezone.localdate(letter.valid_until)
    with translation.override("pt-pt"):
        portuguese = formats.date_format(day, "DATE_FORMAT")
    with translation.override("en"):
        return f"{portuguese} / {formats.date_format(day, 'DATE_FORMAT')}"


def text_of_pdf(data: bytes) -> list[str]:
    return [" ".join(page.extract_text().split()) for page in PdfReader(io.BytesIO(data)).pages]


def temporary_pin(page_text: str) -> str:
    found = re.search(r"Temporary PIN: ((?:\d ){3,7}\d)", page_text)
    assert found, page_text
    return found.group(1).replace(" ", "")


def everything_stored() -> str:
    """Every row of every table, as text: where a secret must not be."""
    chunks = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names():
            cursor.execute(f'SELECT * FROM "{table}"')
            chunks.extend(repr(row) for row in cursor.fetchall())
    return "\n".join(chunks)


@pytest.fixture
def mailroom(make_staff):
    return make_staff("mailroom", counter="").staff


def test_a_new_pin_by_letter_from_desk_to_post(staff_client, make_citizen, mailroom, run_worker, clock, outbox):
    clerk = staff_client("clerk", counter="Loja Aveiro")
    key = make_citizen(nic="12345678", phone="+351912345678")
    response = ask_new_pin(clerk, key)
    assert response.status_code == 302
    page = clerk.get(response["Location"]).content.decode()
    letter = Letter.objects.get()
    assert letter.status == LetterStatus.QUEUED and letter.pin_sealed and not letter.pdf_sealed
    assert letter.reference in page
    # The old PIN no longer opens the key.
    assert sign_in(clerk, pin="4719").status_code != 302

    run_worker()
    letter.refresh_from_db()
    assert letter.status == LetterStatus.READY and letter.pin_sealed == "" and letter.pdf_sealed
    # The citizen is told on their phone (in their language, pt-PT here) before the letter arrives.
    assert "por carta" in outbox.last("+351912345678").body
    run_worker()  # idempotent: nothing more happens
    assert AuditEvent.objects.filter(event="letter.produce").count() == 1

    batch = letters.make_batch(mailroom)
    assert letters.make_batch(mailroom) is None  # nothing else ready
    pages = text_of_pdf(letters.batch_pdf(mailroom, batch))
    assert len(pages) == 1
    text = pages[0]
    pin = temporary_pin(text)
    for expected in ("Maria Teste Silva", "Rua das Flores 12, 3.º Esq.", "1200-195 Lisboa", letter.reference,
                     f"PIN válido até / PIN valid until: {valid_until(letter)}", "Your temporary PIN",
                     "o PIN temporário acima", "the temporary PIN above",
                     "choose your own PIN before anything else"):
        assert expected in text, expected
    # The PIN is nowhere in the database, in clear, in the audit or in the counter's records.
    assert pin not in everything_stored()
    assert pin not in clerk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()

    letters.mark_posted(mailroom, batch)
    letter.refresh_from_db()
    assert letter.status == LetterStatus.POSTED and letter.pdf_sealed == ""

    # The citizen signs in with the letter's PIN and must change it before anything else.
    response = sign_in(Client(), pin=pin)
    assert response.status_code == 302
    assert LoginTransaction.objects.get(key=key).must_change_pin


def test_the_letter_pdf_is_a4_and_names_fit_the_window(staff_client, make_citizen, mailroom, run_worker):
    clerk = staff_client("clerk")
    key = make_citizen(nic="12345678", full_name="Łukasz Żółć Nowak")
    ask_new_pin(clerk, key)
    run_worker()
    batch = letters.make_batch(mailroom)
    reader = PdfReader(io.BytesIO(letters.batch_pdf(mailroom, batch)))
    box = reader.pages[0].mediabox
    assert (round(float(box.width) * 25.4 / 72), round(float(box.height) * 25.4 / 72)) == (210, 297)
    assert "Łukasz Żółć Nowak" in reader.pages[0].extract_text()


def test_the_window_shows_the_address_and_nothing_else(staff_client, make_citizen, mailroom, run_worker, caplog):
    """DIN 5008 form B window: 20 mm from the left, 45 mm from the top, 85 × 45 mm."""
    clerk = staff_client("clerk")
    key = make_citizen(nic="12345678")
    ask_new_pin(clerk, key)
    with caplog.at_level("DEBUG"):
        run_worker()
    reader = PdfReader(io.BytesIO(letters.batch_pdf(mailroom, letters.make_batch(mailroom))))
    page_height = float(reader.pages[0].mediabox.height)
    placed = []

    def visit(text, cm, tm, font, size):
        if text.strip():
            x_mm, top_mm = tm[4] * 25.4 / 72, (page_height - tm[5]) * 25.4 / 72
            placed.append((text.strip(), 20 <= x_mm <= 105 and 45 <= top_mm <= 90))

    reader.pages[0].extract_text(visitor_text=visit)
    in_window = [text for text, inside in placed if inside]
    assert in_window == ["Maria Teste Silva", "Rua das Flores 12, 3.º Esq.", "1200-195 Lisboa", "Portugal"]
    pin = temporary_pin(" ".join(text for text, _ in placed))
    # Nothing in the worker's log says anything of the PIN (not even which glyphs it needed).
    assert pin not in caplog.text and "Glyph" not in caplog.text


def test_a_lost_letter_is_cancelled_and_its_pin_voided(staff_client, make_citizen, mailroom, run_worker):
    clerk = staff_client("clerk")
    key = make_citizen(nic="12345678", phone="+351912345678")
    ask_new_pin(clerk, key)
    run_worker()
    batch = letters.make_batch(mailroom)
    pin = temporary_pin(text_of_pdf(letters.batch_pdf(mailroom, batch))[0])
    letters.mark_posted(mailroom, batch)
    letter = Letter.objects.get()
    response = clerk.post(f"/counter/citizen/{key.citizen.pk}/letters/{letter.pk}/cancel", {
        "letter-presented_type": "cc", "letter-presented_country": "PT", "letter-presented_number": "12345678",
        "letter-reason": "The letter was lost in the post", "confirmed": "yes"})
    assert response.status_code == 302
    letter.refresh_from_db()
    assert letter.status == LetterStatus.CANCELLED
    assert Key.objects.get(pk=key.pk).pin_hash == ""
    assert sign_in(clerk, pin=pin).status_code != 302  # the lost PIN opens nothing
    assert CounterAction.objects.filter(kind="letter_cancel").count() == 1
    assert AuditEvent.objects.get(event="letter.cancel").detail["pin_voided"] is True


def test_cancelling_a_letter_before_production_means_it_is_never_printed(staff_client, make_citizen, mailroom,
                                                                          run_worker):
    clerk = staff_client("clerk")
    key = make_citizen(nic="12345678")
    ask_new_pin(clerk, key)
    letter = Letter.objects.get()
    letters.cancel_letter(letter, clerk.login_as.staff, reason="Citizen asked to cancel it",
                          presented=letters.Presented("cc", "PT", "12345678", ""))
    run_worker()
    letter.refresh_from_db()
    assert letter.status == LetterStatus.CANCELLED and not letter.pin_sealed and not letter.pdf_sealed
    assert letters.make_batch(mailroom) is None


def test_only_the_mail_room_prints(staff_client, make_citizen, run_worker, make_staff):
    clerk = staff_client("clerk")
    key = make_citizen(nic="12345678")
    ask_new_pin(clerk, key)
    run_worker()
    for role in ("clerk", "supervisor", "auditor", "rp-admin"):
        with pytest.raises(PermissionError):
            letters.make_batch(make_staff(role).staff)
    assert clerk.get("/counter/letters/").status_code == 403
    assert Letter.objects.get().batch is None


def test_mail_room_pages_batch_download_and_post(staff_client, make_citizen, run_worker, make_staff):
    clerk_login = make_staff("clerk")
    key = make_citizen(nic="12345678")
    letters.issue_new_pin(clerk_login.staff, key, letters.Presented("cc", "PT", "12345678", REASON), address=ADDRESS)
    run_worker()
    room = staff_client("mailroom", counter="")
    assert "Ready to print: 1." in room.get("/counter/letters/").content.decode()
    assert room.post("/counter/letters/batch").status_code == 302
    batch = Letter.objects.get().batch
    response = room.get(f"/counter/letters/batch/{batch.pk}.pdf")
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert temporary_pin(text_of_pdf(response.content)[0])
    assert room.post(f"/counter/letters/batch/{batch.pk}/posted").status_code == 302
    row = room.get("/counter/letters/").content.decode().split(f'data-batch="{batch.pk}"')[1].split("</tr>")[0]
    # When the batch was made and posted, in words, as the mail room reads them (no ISO date).
    batch.refresh_from_db()
    with translation.override("en"):
        assert formats.moment(batch.created_at) in row and formats.moment(batch.posted_at) in row
    assert not re.search(r"\d{4}-\d{2}-\d{2}", row)
    response = room.get(f"/counter/letters/batch/{batch.pk}.pdf")
    assert response.status_code == 302  # posted: nothing is kept to download
    assert AuditEvent.objects.filter(event="letter.batch_download").count() == 1


def test_parallel_workers_produce_a_letter_once(make_staff, make_citizen):
    from chave.throttle.tests.parallel import run_together

    key = make_citizen(nic="12345678")
    letter = letters.issue_new_pin(make_staff("clerk").staff, key, letters.Presented("cc", "PT", "12345678", REASON),
                                   address=ADDRESS)
    results = run_together(4, lambda i: letters.produce(str(letter.pk)))
    assert results == ["ready"] * 4
    assert AuditEvent.objects.filter(event="letter.produce").count() == 1
    letter.refresh_from_db()
    assert letter.status == LetterStatus.READY and letter.pin_sealed == ""


def test_a_pin_handed_over_sealed_is_printed_at_the_counter_and_kept_nowhere(staff_client, make_citizen, mailroom,
                                                                             run_worker, settings, tmp_path):
    settings.CHAVE_COUNTER_PRINTER, settings.CHAVE_COUNTER_PRINT_DIR = "spool", tmp_path
    clerk = staff_client("clerk", counter="Loja Aveiro")
    key = make_citizen(nic="12345678", phone="+351912345678")
    response = clerk.post(f"/counter/citizen/{key.citizen.pk}/new-pin", {
        "pin-presented_type": "cc", "pin-presented_country": "PT", "pin-presented_number": "12345678",
        "pin-reason": REASON, "pin-delivery": "counter"})
    assert response.status_code == 302
    run_worker()
    letter = Letter.objects.get()
    assert letter.status == LetterStatus.PRINTED and not letter.pdf_sealed and not letter.pin_sealed
    printed = tmp_path / "Loja-Aveiro" / f"{letter.reference}.pdf"
    assert printed.stat().st_mode & 0o077 == 0  # the spool file is its owner's only
    text = text_of_pdf(printed.read_bytes())[0]
    assert "Handed over at: Loja Aveiro" in text
    pin = temporary_pin(text)
    assert pin not in everything_stored()
    assert letters.make_batch(mailroom) is None  # not the mail room's
    page = clerk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert f"/letters/{letter.pk}/handed-over" in page and pin not in page
    assert clerk.post(f"/counter/citizen/{key.citizen.pk}/letters/{letter.pk}/handed-over").status_code == 302
    assert Letter.objects.get().status == LetterStatus.HANDED
    assert AuditEvent.objects.get(event="letter.handed").detail["counter"] == "Loja Aveiro"
    assert sign_in(Client(), pin=pin).status_code == 302


def test_without_a_printer_only_the_post_is_offered(staff_client, make_citizen, settings):
    settings.CHAVE_COUNTER_PRINTER = "off"
    clerk = staff_client("clerk")
    key = make_citizen(nic="12345678")
    response = clerk.post(f"/counter/citizen/{key.citizen.pk}/new-pin", {
        "pin-presented_type": "cc", "pin-presented_country": "PT", "pin-presented_number": "12345678",
        "pin-reason": REASON, "pin-delivery": "counter"})
    assert response.status_code == 400 and 'value="counter"' not in response.content.decode()
    assert not Letter.objects.exists() and Key.objects.get(pk=key.pk).pin_is_temporary is False
    with pytest.raises(ValidationError, match="no PIN-mailer printer"):  # the service says so too
        letters.send_letter(clerk.login_as.staff, key, delivery="counter")


def hand_over_sealed(clerk, key):
    return clerk.post(f"/counter/citizen/{key.citizen.pk}/new-pin", {
        "pin-presented_type": "cc", "pin-presented_country": "PT", "pin-presented_number": "12345678",
        "pin-reason": REASON, "pin-delivery": "counter"})


def run_due_tasks(run_worker, *, rounds: int) -> None:
    """Run the worker ``rounds`` times, each time making the scheduled tasks due (the tests' clock
    runs ahead of the worker's)."""
    import datetime as dt

    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    for _ in range(rounds):
        DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now() - dt.timedelta(seconds=1))
        run_worker()


def test_a_failed_mailer_print_is_tried_again_later(staff_client, make_citizen, broken_printer, clock, settings):
    from django_tasks_db.models import DBTaskResult

    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "counter_print_backoff_seconds": [45, 90]}
    clerk = staff_client("clerk", counter="Loja Aveiro")
    key = make_citizen(nic="12345678", phone="+351912345678")
    assert hand_over_sealed(clerk, key).status_code == 302
    letter = Letter.objects.get()
    assert letters.produce(str(letter.pk)) == LetterStatus.QUEUED
    letter.refresh_from_db()
    assert (letter.print_attempts, letter.pin_sealed != "") == (1, True)
    assert (letter.next_print_at - clock.now()).total_seconds() == 45
    waiting = DBTaskResult.objects.filter(status="READY", task_path__endswith="produce_letter")
    retry = waiting.get(run_after=letter.next_print_at)  # besides the first try's task, run here by hand
    assert retry.args_kwargs["args"] == [str(letter.pk)] and waiting.count() == 2
    page = clerk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert "The printer did not take it; trying again at" in page
    broken_printer.fix()
    assert letters.produce(str(letter.pk)) == LetterStatus.PRINTED  # the scheduled retry, when due
    assert (broken_printer.folder / f"{letter.reference}.pdf").exists()
    assert [e.outcome for e in AuditEvent.objects.filter(event="letter.print")] == ["retry"]


def test_a_mailer_that_keeps_failing_waits_for_the_clerk_to_print_it_again(staff_client, make_citizen, broken_printer,
                                                                        run_worker, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "counter_print_backoff_seconds": [0, 0]}
    clerk = staff_client("clerk", counter="Loja Aveiro")
    key = make_citizen(nic="12345678", phone="+351912345678")
    assert hand_over_sealed(clerk, key).status_code == 302
    run_due_tasks(run_worker, rounds=3)  # the first try and both retries fail
    letter = Letter.objects.get()
    assert (letter.status, letter.print_attempts, letter.next_print_at) == (LetterStatus.PRINT_FAILED, 3, None)
    assert "spool" in letter.print_error and letter.pin_sealed  # the PIN stays sealed for the next print
    page = clerk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    again = f"/counter/citizen/{key.citizen.pk}/letters/{letter.pk}/print-again"
    assert "Printing failed" in page and again in page and "Check the printer" in page
    assert [e.outcome for e in AuditEvent.objects.filter(event="letter.print").order_by("at", "id")] == [
        "retry", "retry", "failed"]
    broken_printer.fix()
    response = clerk.post(again)
    assert response.status_code == 302
    assert "on its way to the printer again" in clerk.get(response["Location"]).content.decode()
    run_worker()
    letter.refresh_from_db()
    assert letter.status == LetterStatus.PRINTED and not letter.pin_sealed
    pin = temporary_pin(text_of_pdf((broken_printer.folder / f"{letter.reference}.pdf").read_bytes())[0])
    assert sign_in(Client(), pin=pin).status_code == 302
    assert AuditEvent.objects.get(event="letter.print_again").detail["staff"] == clerk.login_as.username
    # Printing it again is for a failed mailer only: a second press changes nothing.
    response = clerk.post(again)
    assert "not waiting to be printed again" in clerk.get(response["Location"]).content.decode()
    assert Letter.objects.get().status == LetterStatus.PRINTED


def test_a_failed_mailer_can_be_cancelled_instead(staff_client, make_citizen, broken_printer, run_worker, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "counter_print_backoff_seconds": []}
    clerk = staff_client("clerk", counter="Loja Aveiro")
    key = make_citizen(nic="12345678", phone="+351912345678")
    assert hand_over_sealed(clerk, key).status_code == 302
    run_worker()
    letter = Letter.objects.get()
    assert letter.status == LetterStatus.PRINT_FAILED
    response = clerk.post(f"/counter/citizen/{key.citizen.pk}/letters/{letter.pk}/cancel", {
        "letter-presented_type": "cc", "letter-presented_country": "PT", "letter-presented_number": "12345678",
        "letter-reason": "The printer is broken for the day", "confirmed": "yes"})
    assert response.status_code == 302
    letter.refresh_from_db()
    assert letter.status == LetterStatus.CANCELLED and not letter.pin_sealed
    assert Key.objects.get(pk=key.pk).pin_hash == ""
