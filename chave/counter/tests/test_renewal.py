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
