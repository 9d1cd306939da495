"""Registering at the counter and changing a contact: codes and the PIN are typed by the citizen on
the desk's citizen screen, never seen by the clerk."""

import datetime as dt
import re

import pytest

from chave.audit.models import AuditEvent
from chave.delivery.messages import notice_message
from chave.counter.models import CounterAction, CounterRegistration, Letter
from chave.identity.models import Citizen, Contact, KeyStatus
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
from chave.login.tests.pages import says, sign_in

from .screen import choose_pin, paired_screen, screen_task, type_code

pytestmark = pytest.mark.django_db(transaction=True)  # the delivery worker runs

PHONE, EMAIL, PIN = "+351912345678", "ana@example.pt", "58204716"


def portuguese(clock, nic="12345678"):
    LocalRecords().store(IdentityRecord(doc=DocumentRef("cc", "PT", nic), full_name="Ana Maria Costa",
                                        given_name="Ana Maria", family_name="Costa", birth_date=dt.date(1985, 3, 9),
                                        document_expiry=clock.today() + dt.timedelta(days=2000)))


def register(desk, **data):
    fields = {"nationality": "pt", "nic": "12345678", "mobile": "912 345 678", "email": EMAIL, "pin_by": "screen",
              "reason": "New key requested at the counter", "terms": "on"}
    return desk.post("/counter/register", {**fields, **data})


def test_portuguese_citizen_registers_and_chooses_the_pin_on_the_citizen_screen(staff_client, clock, outbox):
    portuguese(clock)
    desk = staff_client("clerk", counter="Loja Aveiro")
    device = paired_screen(desk)
    assert screen_task(device) == "screen-idle"
    response = register(desk)
    assert response.status_code == 302
    url = response["Location"]
    registration = CounterRegistration.objects.get()
    key = registration.key
    assert key.status == KeyStatus.PENDING
    from chave.public.terms import accepted

    assert accepted(key.citizen).channel == "counter"  # the citizen's acceptance, recorded with the key

    # Completing before the contacts and the PIN are done is refused.
    desk.post(url + "step", {"step": "complete"})
    assert CounterRegistration.objects.get().completed_at is None

    # The citizen's page leads back to the registration while it is open.
    assert f'href="{url}"' in desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    desk.post(url + "step", {"step": "mobile"})
    assert 'id="turn-waiting"' in desk.get(url).content.decode()
    assert screen_task(device) == "screen-task"
    response = type_code(device, outbox.last_code(PHONE))
    assert 'id="screen-thanks"' in response.content.decode()
    desk.post(url + "step", {"step": "email"})
    type_code(device, outbox.last_code(EMAIL))

    desk.post(url + "step", {"step": "pin"})
    refused = choose_pin(device, "1234")
    assert refused.status_code == 400  # a trivial PIN: the citizen is told on the screen
    assert choose_pin(device, PIN, "58204717").status_code == 400  # the two differ
    assert 'id="screen-thanks"' in choose_pin(device, PIN).content.decode()

    page = desk.get(url).content.decode()
    assert page.count('class="done"') == 3 and 'id="turn-waiting"' not in page
    assert PIN not in page
    response = desk.post(url + "step", {"step": "complete"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and not key.pin_is_temporary
    assert outbox.last(PHONE).body == notice_message("registered", language="pt-pt").body
    action = CounterAction.objects.get(kind="register")
    assert (action.counter, action.document_type, action.document_number) == ("Loja Aveiro", "cc", "12345678")
    assert AuditEvent.objects.filter(event="counter.register").count() == 1
    # The citizen signs in with the PIN they chose.
    assert sign_in(device, pin=PIN).status_code == 302
    # The PIN and the codes never reached the audit log.
    assert not AuditEvent.objects.filter(detail__icontains=PIN).exists()


def test_foreigner_registers_with_document_and_nif_and_gets_the_pin_by_letter(staff_client, clock, outbox,
                                                                              run_worker):
    desk = staff_client("clerk")
    device = paired_screen(desk)
    response = register(desk, nationality="foreign", nic="", doc_type="residence_permit", doc_country="br",
                        doc_number="ab 123 456", nif="123456789", full_name="João da Silva Souza",
                        given_name="João", family_name="Souza", birth_date="1990-01-02",
                        document_expiry=(clock.today() + dt.timedelta(days=700)).isoformat(), email="",
                        pin_by="letter", address="Rua do Sol 5\n4000-001 Porto")
    assert response.status_code == 302, response.content.decode()
    citizen = Citizen.objects.get()
    assert (citizen.doc_type, citizen.doc_country, citizen.doc_number, citizen.nif) == (
        "residence_permit", "BR", "AB123456", "123456789")
    url = response["Location"]
    desk.post(url + "step", {"step": "mobile"})
    type_code(device, outbox.last_code(PHONE))
    desk.post(url + "step", {"step": "complete"})
    key = citizen.keys.get()
    assert key.status == KeyStatus.ACTIVE and key.pin_is_temporary
    letter = Letter.objects.get()
    assert letter.address == "Rua do Sol 5\n4000-001 Porto"
    run_worker()
    letter.refresh_from_db()
    assert letter.status == "ready"


@pytest.mark.parametrize(("data", "field"), [
    ({"nationality": "foreign", "doc_type": "passport", "doc_country": "BR", "doc_number": "X1234567", "nif": "",
      "full_name": "A B", "given_name": "A", "family_name": "B", "birth_date": "1990-01-02",
      "document_expiry": "2099-01-01"}, "nif"),
    ({"nic": "1234"}, "nic"),
    ({"mobile": "", "email": ""}, "mobile"),
])
def test_registration_refuses_incomplete_input(staff_client, clock, data, field):
    portuguese(clock)
    desk = staff_client("clerk")
    response = register(desk, **data)
    assert response.status_code == 400 and f'id="id_{field}_error"' in response.content.decode()
    assert not CounterRegistration.objects.exists()


def test_a_registration_needs_a_known_document(staff_client, clock):
    desk = staff_client("clerk")
    response = register(desk, nic="87654321")
    assert response.status_code == 400 and says("The civil registry has no record of this document.", "en") in response.content.decode()


def test_a_supervisor_reverses_a_registration(staff_client, make_staff, clock, outbox):
    from chave.counter import services

    portuguese(clock)
    desk = staff_client("clerk")
    register(desk)
    action = CounterAction.objects.get(kind="register")
    services.reverse(make_staff("supervisor").staff, action, "Registered the wrong person")
    assert CounterRegistration.objects.get().key.status == KeyStatus.CANCELLED
    assert not Contact.objects.filter(live=True).exists()  # the number is free again


def test_contact_change_is_confirmed_on_the_citizen_screen(staff_client, make_citizen, outbox):
    desk = staff_client("clerk", counter="Loja Braga")
    key = make_citizen(nic="12345678", phone=PHONE)
    url = f"/counter/citizen/{key.citizen.pk}/"
    data = {"contact-presented_type": "cc", "contact-presented_country": "PT", "contact-presented_number": "12345678",
            "contact-reason": "Citizen has a new phone number", "contact-kind": "mobile", "contact-value": "936 000 111"}
    # Without a paired screen, nothing is sent.
    response = desk.post(url + "contact", data)
    assert response.status_code == 400 and "Pair the citizen screen" in response.content.decode()
    device = paired_screen(desk)
    assert desk.post(url + "contact", data).status_code == 302
    assert 'id="turn-waiting"' in desk.get(url).content.decode()
    assert not CounterAction.objects.exists()  # not until the citizen confirms
    type_code(device, outbox.last_code("+351936000111"))
    assert key.contacts.get(kind="mobile").value == "+351936000111"
    action = CounterAction.objects.get()
    assert (action.kind, action.counter, action.reason) == ("contact", "Loja Braga", "Citizen has a new phone number")
    assert outbox.last(PHONE).body == notice_message("contact_changed", language="pt-pt").body  # the old number


def test_screen_pairing_links_work_once_and_expire(staff_client, clock):
    from django.test import Client

    desk = staff_client("clerk")
    page = desk.post("/counter/desk/screen").content.decode()
    link = page.split('id="pairing-link" href="')[1].split('"')[0]
    assert Client().post(link).status_code == 302
    assert Client().post(link).status_code == 400  # used
    paired = desk.get("/counter/desk/screen").content.decode()
    assert "paired with your desk since" in paired and not re.search(r"\d{4}-\d{2}-\d{2}", paired)
    page = desk.post("/counter/desk/screen").content.decode()
    link = page.split('id="pairing-link" href="')[1].split('"')[0]
    clock.travel(dt.timedelta(minutes=6))
    assert Client().post(link).status_code == 400  # expired
    assert Client().get("/counter/screen/").status_code == 403  # an unpaired device sees nothing


def test_a_turn_lapses_and_a_wrong_code_is_told_on_the_screen(staff_client, clock, outbox):
    from chave import policy

    portuguese(clock)
    desk = staff_client("clerk")
    device = paired_screen(desk)
    url = register(desk, email="")["Location"]
    desk.post(url + "step", {"step": "mobile"})
    code = outbox.last_code(PHONE)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    response = type_code(device, wrong)
    assert response.status_code == 400 and "This code is not right" in response.content.decode()
    clock.travel(dt.timedelta(seconds=policy.get("counter_turn_seconds") + 1))
    assert screen_task(device) == "screen-idle"  # the turn lapsed: nothing to type any more
    assert Contact.objects.get(kind="mobile").verified_at is None


def test_without_the_citizens_acceptance_of_the_terms_nothing_is_registered(staff_client, clock):
    portuguese(clock)
    desk = staff_client("clerk")
    response = register(desk, terms="")
    assert response.status_code == 400
    assert "must accept the terms of use" in response.content.decode()
    assert not CounterRegistration.objects.exists() and not Citizen.objects.exists()
