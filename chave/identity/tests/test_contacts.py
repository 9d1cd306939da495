"""Contact verification by code: new contacts, replaced contacts, and who may hold them."""

import pytest
from django.core.exceptions import ValidationError

from chave.audit.models import AuditEvent
from chave.identity import contacts
from chave.identity.models import ContactKind

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_new_email_is_verified_by_the_code_sent_to_it(make_citizen, outbox):
    key = make_citizen(phone="+351912345678")
    started = contacts.request_verification(key, ContactKind.EMAIL, "ana@example.pt")
    assert started.sent
    code = outbox.last_code("ana@example.pt")
    result = contacts.confirm(key, ContactKind.EMAIL, "ana@example.pt", transaction_id=started.transaction, code=code)
    assert result.ok
    email = key.contacts.get(kind=ContactKind.EMAIL)
    assert email.value == "ana@example.pt" and email.verified_at is not None
    assert AuditEvent.objects.filter(event="contact.verify", citizen=key.citizen).exists()


def test_a_changed_mobile_replaces_the_old_one_which_is_told(make_citizen, outbox):
    key = make_citizen(phone="+351912345678")
    started = contacts.request_verification(key, ContactKind.MOBILE, "+351936000111")
    code = outbox.last_code("+351936000111")
    assert contacts.confirm(key, ContactKind.MOBILE, "+351936000111", transaction_id=started.transaction, code=code).ok
    assert list(key.contacts.values_list("value", flat=True)) == ["+351936000111"]
    notice = outbox.last("+351912345678")
    assert "changed" in notice.body or "alterad" in notice.body


def test_a_code_for_one_contact_cannot_confirm_another(make_citizen, outbox):
    key = make_citizen(phone="+351912345678")
    started = contacts.request_verification(key, ContactKind.EMAIL, "ana@example.pt")
    code = outbox.last_code("ana@example.pt")
    with pytest.raises(ValidationError) as err:
        contacts.confirm(key, ContactKind.EMAIL, "eve@example.pt", transaction_id=started.transaction, code=code)
    assert err.value.code == "wrong_contact"
    assert not key.contacts.filter(kind=ContactKind.EMAIL).exists()


def test_a_wrong_code_verifies_nothing(make_citizen, outbox):
    key = make_citizen(phone="+351912345678")
    started = contacts.request_verification(key, ContactKind.EMAIL, "ana@example.pt")
    code = outbox.last_code("ana@example.pt")
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    result = contacts.confirm(key, ContactKind.EMAIL, "ana@example.pt", transaction_id=started.transaction, code=wrong)
    assert not result.ok and result.reason == "wrong"
    assert not key.contacts.filter(kind=ContactKind.EMAIL).exists()


def test_a_mobile_of_another_live_key_is_refused(make_citizen):
    make_citizen(phone="+351912345678")
    other = make_citizen(phone="+351936000111")
    with pytest.raises(ValidationError) as err:
        contacts.request_verification(other, ContactKind.MOBILE, "+351912345678")
    assert err.value.code == "mobile_taken"
