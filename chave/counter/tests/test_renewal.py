"""Renewing the identity document renews the key: from the civil records (housekeeping) or at the
counter with the renewed document in hand; the citizen is told; a signing certificate is re-issued
for the same key, without a new activation."""

import dataclasses
import datetime as dt

import pytest
from django.utils import timezone

from chave.audit.models import AuditEvent
from chave.counter import housekeeping
from chave.counter.models import CounterAction, KeyReminder
from chave.delivery.messages import notice_message
from chave.identity.models import CivilRecord, Key
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

pytestmark = pytest.mark.django_db(transaction=True)  # the outbox worker runs
PHONE = "+351912345678"


def renewed_notice(valid_until, language="pt-pt"):
    moment = timezone.make_aware(dt.datetime.combine(valid_until, dt.time(12)))
    return notice_message("key_renewed", language=language, until=moment).body


def test_a_card_renewed_in_the_civil_records_renews_the_key_before_any_reminder(make_citizen, clock, outbox):
    key = make_citizen(nic="12345678", phone=PHONE, document_expiry=clock.today() + dt.timedelta(days=5))
    untouched = make_citizen(nic="23456789", phone="+351912000999",
                             document_expiry=clock.today() + dt.timedelta(days=5))
    clock.travel(dt.timedelta(days=10))  # the cards expired 5 days ago: the keys have 25 days left
    doc = DocumentRef("cc", "PT", "12345678")
    record = LocalRecords().lookup(doc)
    new_expiry = clock.today() + dt.timedelta(days=3650)
    LocalRecords().store(dataclasses.replace(record, document_expiry=new_expiry))

    result = housekeeping.run()
    key.refresh_from_db()
    assert key.valid_until == new_expiry + dt.timedelta(days=30)  # the card's expiry + 30 days
    assert key.citizen.document_expiry == new_expiry
    assert outbox.last(PHONE).body == renewed_notice(key.valid_until)
    assert not KeyReminder.objects.filter(key=key).exists()  # renewed first: nothing to remind
    assert result.expiry_reminders == 1 and KeyReminder.objects.filter(key=untouched).count() == 1
    event = AuditEvent.objects.get(event="key.renew")
    assert event.detail["by"] == "civil-registry" and event.detail["valid_until"] == key.valid_until.isoformat()
    housekeeping.run()  # once
    assert AuditEvent.objects.filter(event="key.renew").count() == 1


def test_a_clerk_records_a_renewed_foreign_document_and_signing_follows(signing_pki, staff_client, clock,
                                                                        outbox):
    from chave.identity import services as identity
    from chave.signing import services as signing

    doc = DocumentRef("residence_permit", "UA", "AB123456")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Olena Kovalenko", given_name="Olena",
                                        family_name="Kovalenko", birth_date=dt.date(1988, 3, 2),
                                        document_expiry=clock.today() + dt.timedelta(days=20), nif="123456789"))
    key, _pin = identity.register_citizen(doc, [identity.ContactInput("mobile", PHONE)], pin="4719",
                                          contacts_verified_by="test", language="en")
    credential = signing.activate_signing(key, "5820", by="test").credential
    desk = staff_client("clerk", counter="Loja Aveiro")
    url = f"/counter/citizen/{key.citizen.pk}/renew"
    form = {"renew-presented_type": "residence_permit", "renew-presented_country": "UA",
            "renew-presented_number": "AB123456", "renew-reason": "Residence permit renewed, shown today"}

    assert "The renewed document is valid until" in desk.get(url).content.decode()
    older = desk.post(url, {**form, "renew-document_expiry": (clock.today() + dt.timedelta(days=10)).isoformat()})
    assert older.status_code == 400 and "not later than the document on record" in older.content.decode()
    new_expiry = clock.today() + dt.timedelta(days=730)
    assert desk.post(url, {**form, "renew-document_expiry": new_expiry.isoformat()}).status_code == 302

    key = Key.objects.get(pk=key.pk)
    assert key.valid_until == new_expiry  # a foreign document: its own expiry
    assert CivilRecord.objects.get(doc_number="AB123456").document_expiry == new_expiry
    action = CounterAction.objects.get()
    assert (action.kind, action.detail) == ("renew", {"document_expiry": new_expiry.isoformat()})
    outbox.last(PHONE)  # the messages go out
    # Newest first: the key's renewal, then its signing certificate's.
    credential.refresh_from_db()
    assert [m.body for m in outbox.messages(PHONE)[:2]] == [
        notice_message("signing_certificate_renewed", language="en", until=credential.not_after).body,
        renewed_notice(new_expiry, "en")]
    # Signing goes on with the same credential and key, its certificate re-issued: no new activation.
    assert signing.active_credential(key.citizen) == credential and signing.check_signing_pin(credential, "5820").ok
    assert credential.not_after.date() == new_expiry
    event = AuditEvent.objects.get(event="signing.reissue")
    assert event.channel == "counter" and event.detail["by"].startswith("staff:")


# --- A renewed foreign document with a new number -------------------------------------------------

DOC = DocumentRef("residence_permit", "UA", "AB123456")


def foreign_resident(clock, doc=DOC, phone=PHONE, name="Olena Kovalenko", birth=dt.date(1988, 3, 2), days=20):
    from chave.identity import services as identity

    LocalRecords().store(IdentityRecord(doc=doc, full_name=name, given_name=name.split()[0],
                                        family_name=name.split()[-1], birth_date=birth,
                                        document_expiry=clock.today() + dt.timedelta(days=days), nif="123456789"))
    key, _pin = identity.register_citizen(doc, [identity.ContactInput("mobile", phone)], pin="4719",
                                          contacts_verified_by="test", language="en")
    return key


def new_document_form(**changes):
    form = {"newdoc-presented_type": "residence_permit", "newdoc-presented_country": "UA",
            "newdoc-presented_number": "CD 765 432", "newdoc-reason": "Residence permit renewed with a new number",
            "newdoc-same_person": "on"}
    form.update(changes)
    return {name: value for name, value in form.items() if value is not None}


def test_a_clerk_records_a_renewed_foreign_document_with_a_new_number(staff_client, clock, outbox):
    from chave.federation.attributes import attribute_values
    from chave.portal.services import history

    key = foreign_resident(clock)
    portal_identity = attribute_values(key)
    desk = staff_client("clerk", counter="Loja Aveiro")
    summary = desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert 'id="task-new_document"' in summary
    url = f"/counter/citizen/{key.citizen.pk}/new-document"
    page = desk.get(url).content.decode()
    assert "The renewed document presented by the citizen" in page
    assert "The renewed document is of Olena Kovalenko, born on 2 March 1988" in page
    assert 'value="cc"' not in page  # a Citizen Card keeps its number: not offered here

    new_expiry = clock.today() + dt.timedelta(days=1825)
    response = desk.post(url, new_document_form(**{"newdoc-document_expiry": new_expiry.isoformat()}))
    assert response.status_code == 302 and response["Location"] == f"/counter/citizen/{key.citizen.pk}/"

    key = Key.objects.select_related("citizen").get(pk=key.pk)
    citizen = key.citizen
    assert (citizen.doc_type, citizen.doc_country, citizen.doc_number) == ("residence_permit", "UA", "CD765432")
    assert citizen.document_expiry == new_expiry and key.valid_until == new_expiry  # a foreign document: its own
    assert CivilRecord.objects.get(doc_number="CD765432").full_name == "Olena Kovalenko"
    assert CivilRecord.objects.filter(doc_number="AB123456").exists()  # the old record stays as it was
    action = CounterAction.objects.get()
    assert (action.kind, action.document_number) == ("renew", "CD765432")
    assert action.detail == {"document_expiry": new_expiry.isoformat(),
                             "previous_document": "residence_permit UA AB123456"}
    body = notice_message("key_new_document", language="en",
                          until=timezone.make_aware(dt.datetime.combine(new_expiry, dt.time(12)))).body
    assert outbox.last(PHONE).body == body and "CD765432" not in body
    event = AuditEvent.objects.get(event="key.new_document")
    assert event.detail["previous_document"] == "residence_permit UA AB123456"
    assert event.detail["document"] == "residence_permit UA CD765432"
    assert "key.new_document" in [e.event for e in history(citizen)[:2]]  # with the counter action
    # The citizen's page says it in words, and the portals see the new number for the same person.
    summary = desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert "Key renewed with a new identity document (new number)" in summary
    assert "The renewed document is recorded with its new number" in summary
    assert attribute_values(key)["DocNumber"] == "CD765432"
    assert {k: v for k, v in attribute_values(key).items() if k not in ("DocNumber", "DataValidade")} == {
        k: v for k, v in portal_identity.items() if k not in ("DocNumber", "DataValidade")}


def test_every_problem_with_a_new_document_is_said_at_once_and_nothing_changes(staff_client, clock, outbox):
    key = foreign_resident(clock)
    other = foreign_resident(clock, doc=DocumentRef("passport", "BR", "FP998877"), phone="+351912000111",
                             name="João Pereira", birth=dt.date(1975, 1, 9))
    desk = staff_client("clerk")
    url = f"/counter/citizen/{key.citizen.pk}/new-document"
    yesterday = (clock.today() - dt.timedelta(days=1)).isoformat()

    response = desk.post(url, new_document_form(**{"newdoc-presented_number": "AB 123456", "newdoc-reason": "new",
                                                   "newdoc-same_person": None, "newdoc-document_expiry": ""}))
    page = response.content.decode()
    assert response.status_code == 400
    for problem in ("This is the number on record", "The reason needs at least 10 characters",
                    "Check the name and date of birth on the renewed document",
                    "Give the date the renewed document is valid until"):
        assert problem in page, problem

    # Another person's document: refused with a clear error on the number, nothing written.
    response = desk.post(url, new_document_form(**{
        "newdoc-presented_type": "passport", "newdoc-presented_country": "BR", "newdoc-presented_number": "FP998877",
        "newdoc-document_expiry": (clock.today() + dt.timedelta(days=900)).isoformat()}))
    assert response.status_code == 400
    assert "Another person is registered with this document" in response.content.decode()
    # A past date, and a Citizen Card (not a choice here).
    response = desk.post(url, new_document_form(**{"newdoc-document_expiry": yesterday}))
    assert response.status_code == 400 and "This document has expired" in response.content.decode()
    response = desk.post(url, new_document_form(**{"newdoc-presented_type": "cc", "newdoc-document_expiry":
                                                   (clock.today() + dt.timedelta(days=900)).isoformat()}))
    assert response.status_code == 400
    key.citizen.refresh_from_db()
    other.citizen.refresh_from_db()
    assert (key.citizen.doc_number, other.citizen.doc_number) == ("AB123456", "FP998877")
    assert not CounterAction.objects.exists() and not AuditEvent.objects.filter(event="key.new_document").exists()


def test_the_service_refuses_a_number_the_civil_records_hold_for_someone_else(clock):
    from django.core.exceptions import ValidationError

    from chave.identity import services as identity

    key = foreign_resident(clock)
    taken = DocumentRef("residence_card", "UA", "ZZ000111")
    LocalRecords().store(IdentityRecord(doc=taken, full_name="Iryna Shevchenko", given_name="Iryna",
                                        family_name="Shevchenko", birth_date=dt.date(1990, 1, 1),
                                        document_expiry=clock.today() + dt.timedelta(days=400)))
    with pytest.raises(ValidationError) as refused:
        identity.replace_document(key, taken, clock.today() + dt.timedelta(days=400), by="test")
    assert refused.value.code == "document_taken"
    with pytest.raises(ValidationError) as refused:
        identity.replace_document(key, DOC, clock.today() + dt.timedelta(days=400), by="test")
    assert refused.value.code == "same_document"


def test_a_citizen_card_holder_is_not_offered_a_new_number(staff_client, make_citizen, clock):
    key = make_citizen(nic="12345678", phone=PHONE)
    desk = staff_client("clerk")
    assert 'id="task-new_document"' not in desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    response = desk.post(f"/counter/citizen/{key.citizen.pk}/new-document", new_document_form(**{
        "newdoc-presented_type": "passport", "newdoc-presented_country": "BR",
        "newdoc-document_expiry": (clock.today() + dt.timedelta(days=900)).isoformat()}))
    assert response.status_code == 400
    assert "A Citizen Card keeps its number" in response.content.decode()
    assert Key.objects.get(pk=key.pk).citizen.doc_number == "12345678"
