"""Registering a citizen: who may have a key, how long it is valid, which contacts it may hold."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from chave.audit.models import AuditEvent
from chave.delivery.models import OutboundMessage
from chave.identity import services
from chave.identity.models import Citizen, Contact, ContactKind, Key, KeyStatus
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords
from chave.identity.services import ContactInput
from chave.throttle.tests.parallel import run_together

pytestmark = pytest.mark.django_db

# Noon in Lisbon, so that "today" is the same date in UTC and locally.
NOON = dt.datetime(2025, 6, 15, 11, 0, tzinfo=dt.timezone.utc)
TODAY = dt.date(2025, 6, 15)
MOBILE = "+351912345678"


@pytest.fixture
def on_day(clock):
    clock.freeze(NOON)
    return clock


def record(doc_number="12345678", *, birth_date=dt.date(1980, 5, 17), expiry=dt.date(2030, 1, 31),
           doc_type="cc", country="PT") -> DocumentRef:
    doc = DocumentRef(doc_type, country, doc_number)
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Ana Maria Costa", given_name="Ana",
                                        family_name="Costa", birth_date=birth_date, document_expiry=expiry))
    return doc


def mobile(value=MOBILE):
    return ContactInput(ContactKind.MOBILE, value)


def register(doc, contacts=None, *, pin="4719", verified=True):
    return services.register_citizen(doc, contacts if contacts is not None else [mobile()], pin=pin,
                                     contacts_verified_by="test" if verified else "")


def refusal(doc, contacts=None, **kwargs) -> str:
    with pytest.raises(ValidationError) as caught:
        register(doc, contacts, **kwargs)
    return caught.value.code


# --- Who may have a key -----------------------------------------------------------------------


def test_sixteen_years_old_today_may_register(on_day):
    key, _ = register(record(birth_date=dt.date(2009, 6, 15)))
    assert key.status == KeyStatus.ACTIVE


def test_one_day_short_of_sixteen_may_not_until_the_birthday(on_day):
    doc = record(birth_date=dt.date(2009, 6, 16))
    assert refusal(doc) == "too_young"
    assert not Citizen.objects.exists()
    on_day.travel(dt.timedelta(days=1))
    key, _ = register(doc)
    assert key.status == KeyStatus.ACTIVE


def test_born_on_29_february_turns_sixteen_on_1_march(clock):
    clock.freeze(dt.datetime(2024, 2, 28, 11, tzinfo=dt.timezone.utc))
    doc = record(birth_date=dt.date(2008, 2, 29))
    assert refusal(doc) == "too_young"
    clock.travel(dt.timedelta(days=1))  # 2024 is a leap year: 29 February 2024
    assert register(doc)[0].status == KeyStatus.ACTIVE


def test_minimum_age_is_a_setting(on_day, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "citizen_min_age_years": 18}
    assert refusal(record(birth_date=dt.date(2008, 6, 15))) == "too_young"


def test_expired_document_is_refused_but_one_expiring_today_is_not(on_day):
    assert refusal(record("11111111", expiry=TODAY - dt.timedelta(days=1))) == "document_expired"
    key, _ = register(record("22222222", expiry=TODAY))
    assert key.status == KeyStatus.ACTIVE


def test_unknown_document_is_refused(on_day):
    assert refusal(DocumentRef("cc", "PT", "99999999")) == "unknown_document"


# --- Validity ---------------------------------------------------------------------------------


def test_citizen_card_key_is_valid_until_card_expiry_plus_30_days(on_day):
    key, _ = register(record(expiry=dt.date(2030, 1, 31)))
    assert key.valid_until == dt.date(2030, 3, 2)


def test_foreign_document_key_is_valid_until_the_document_expires(on_day):
    doc = record("FP1234567", doc_type="passport", country="BR", expiry=dt.date(2029, 7, 1))
    key, _ = register(doc)
    assert key.valid_until == dt.date(2029, 7, 1)
    citizen = key.citizen
    assert (citizen.doc_type, citizen.doc_country, citizen.doc_number, citizen.nic) == ("passport", "BR", "FP1234567", None)


# --- One key, its contacts ----------------------------------------------------------------------


def test_one_key_per_citizen(on_day):
    doc = record()
    register(doc)
    assert refusal(doc, [mobile("+351936000111")]) == "already_registered"
    assert Key.objects.count() == 1


def test_after_cancelling_a_citizen_may_register_a_new_key_and_the_old_one_stays_on_record(on_day):
    doc = record()
    old, _ = register(doc)
    services.cancel_key(old)
    new, _ = register(doc, [mobile("+351936000111")])
    assert new.pk != old.pk and new.citizen_id == old.citizen_id
    assert new.status == KeyStatus.ACTIVE
    old.refresh_from_db()
    assert old.status == KeyStatus.CANCELLED
    assert new.citizen.key == new
    # Still only one live key: a third registration is refused.
    assert refusal(doc, [mobile("+351961234567")]) == "already_registered"


def test_the_database_refuses_a_second_live_key_even_without_the_service(on_day):
    from django.db import IntegrityError, transaction

    key, _ = register(record())
    with pytest.raises(IntegrityError), transaction.atomic():
        Key.objects.create(citizen=key.citizen, status=KeyStatus.PENDING, valid_until=key.valid_until,
                           created_at=on_day.now())


def test_a_key_needs_a_mobile_or_an_email(on_day):
    doc = record()
    assert refusal(doc, []) == "no_contact"
    assert refusal(doc, [ContactInput(ContactKind.X, "783214")]) == "no_contact"
    assert refusal(doc, [mobile(), mobile("+351936000111")]) == "duplicate_contact"
    key, _ = register(doc, [ContactInput(ContactKind.EMAIL, "Ana@Example.PT"), ContactInput(ContactKind.X, "783214")])
    assert sorted(key.contacts.values_list("kind", "value")) == [("email", "ana@example.pt"), ("x", "783214")]


def test_malformed_contact_is_refused(on_day):
    assert refusal(record(), [mobile("212345678")]) == "mobile_not_mobile"
    assert refusal(record(), [ContactInput(ContactKind.EMAIL, "ana@")]) == "email_invalid"


def test_a_mobile_number_belongs_to_one_live_key_until_that_key_is_cancelled(on_day):
    first, _ = register(record("11111111"), [mobile()])
    second = record("22222222")
    # Typed another way, it is the same number.
    assert refusal(second, [mobile("912 345 678")]) == "mobile_taken"
    assert refusal(second, [mobile("00351912345678")]) == "mobile_taken"
    services.cancel_key(first)
    key, _ = register(second, [mobile("912 345 678")])
    assert key.contacts.get().value == MOBILE
    assert Contact.objects.filter(value=MOBILE, live=True).count() == 1


def test_an_email_or_x_account_belongs_to_one_live_key(on_day):
    register(record("11111111"), [ContactInput(ContactKind.EMAIL, "ana@example.pt"), ContactInput(ContactKind.X, "783214")])
    assert refusal(record("22222222"), [ContactInput(ContactKind.EMAIL, "ANA@example.pt")]) == "email_taken"
    assert refusal(record("33333333"), [mobile("+351936000111"), ContactInput(ContactKind.X, "783214")]) == "x_taken"


@pytest.mark.django_db(transaction=True)
def test_the_same_mobile_registered_concurrently_for_several_citizens_goes_to_one(on_day):
    docs = [record(f"{20000000 + i}") for i in range(8)]

    def attempt(i):
        try:
            register(docs[i], [mobile()])
            return "ok"
        except ValidationError as exc:
            return exc.code

    outcomes = run_together(len(docs), attempt)
    assert outcomes.count("ok") == 1, outcomes
    assert set(outcomes) == {"ok", "mobile_taken"}
    assert Contact.objects.filter(value=MOBILE).count() == 1
    assert Key.objects.count() == Citizen.objects.count() == 1


def test_unverified_contacts_leave_the_key_pending(on_day):
    key, _ = register(record(), verified=False)
    assert key.status == KeyStatus.PENDING
    assert key.contacts.get().verified_at is None
    decision = services.check_login_pin(key, "4719")
    assert (decision.ok, decision.reason) == (False, "pending")


def test_registration_is_audited_and_the_citizen_told(on_day):
    key, _ = services.register_citizen(record(), [mobile()], pin="4719", contacts_verified_by="counter",
                                       ip="192.0.2.7", channel="counter")
    event = AuditEvent.objects.get(event="key.register")
    assert (event.citizen, event.outcome, event.ip, event.channel) == (key.citizen, "ok", "192.0.2.7", "counter")
    assert event.detail["by"] == "counter"
    assert AuditEvent.objects.filter(event="key.activate", citizen=key.citizen).exists()
    assert OutboundMessage.objects.filter(destination=MOBILE, kind="notice").count() == 1


# --- PIN at registration ------------------------------------------------------------------------


def test_a_chosen_pin_must_follow_the_rules(on_day):
    doc = record(birth_date=dt.date(1980, 5, 17))
    assert refusal(doc, pin="1234") == "pin_trivial"
    assert refusal(doc, pin="17051980") == "pin_birth_date"
    assert refusal(doc, pin="12") == "pin_format"
    key, temporary = register(doc, pin="4719")
    assert temporary is None and not key.pin_is_temporary and key.pin_expires_at is None


def test_temporary_pin_is_given_once_and_must_be_changed(on_day):
    key, temporary = register(record(), pin=None)
    assert temporary is not None and len(temporary) == 8 and temporary.isdigit()
    key.refresh_from_db()
    assert key.pin_is_temporary
    assert temporary not in key.pin_hash
    decision = services.check_login_pin(key, temporary)
    assert decision.ok and decision.must_change_pin
    services.change_pin(key, "58204716")
    with pytest.raises(ValidationError) as caught:
        services.change_pin(key, "58204716")
    assert caught.value.code == "pin_same"
    key.refresh_from_db()
    assert not key.pin_is_temporary and key.pin_expires_at is None
    assert not services.check_login_pin(key, temporary).ok
    decision = services.check_login_pin(key, "58204716")
    assert decision.ok and not decision.must_change_pin


def test_temporary_pin_expires_after_30_days(on_day):
    key, temporary = register(record(), pin=None)
    assert key.pin_expires_at == NOON + dt.timedelta(days=30)
    on_day.travel(dt.timedelta(days=30) - dt.timedelta(minutes=1))
    assert services.check_login_pin(key, temporary).ok
    on_day.travel(dt.timedelta(minutes=1))
    decision = services.check_login_pin(key, temporary)
    assert (decision.ok, decision.reason) == (False, "temporary_pin_expired")
    key.refresh_from_db()
    assert key.pin_failures == 0  # the right PIN, too late: not a wrong attempt


def test_temporary_pins_are_random_and_follow_the_rules():
    from chave.identity.validation import check_pin_rules

    birth = dt.date(1980, 5, 17)
    pins = {services.generate_temporary_pin(birth) for _ in range(200)}
    assert len(pins) == 200
    assert all(len(p) == 8 and check_pin_rules(p, birth_date=birth) for p in pins)
