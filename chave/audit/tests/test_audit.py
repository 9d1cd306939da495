"""The audit log: every security event, with when, who, how, from where and the outcome; never a
PIN or a code, neither there nor in the logs."""

import datetime as dt
import logging
import re

import pytest
from django.core.exceptions import ValidationError

from chave.audit import services as audit
from chave.audit.models import AuditEvent
from chave.codes import services as codes
from chave.codes.tests.inbox import inbox  # noqa: F401 (fixture)
from chave.identity import services as identity
from chave.identity.models import ContactKind, Key
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

pytestmark = pytest.mark.django_db

MOBILE = "+351912345678"
IP = "192.0.2.44"


def fresh(key):
    return Key.objects.select_related("citizen").get(pk=key.pk)


def events(name, **filters):
    return list(AuditEvent.objects.filter(event=name, **filters).order_by("id"))


def assert_complete(event, *, citizen, channel, ip, outcome, at):
    assert (event.citizen_id, event.channel, event.ip, event.outcome, event.at) == (
        citizen.pk if citizen else None, channel, ip, outcome, at
    ), (event.event, event.outcome)


def test_every_security_event_is_recorded_with_time_citizen_channel_ip_and_outcome(make_citizen, clock, inbox, settings):
    now = clock.now
    key = make_citizen(phone=MOBILE, pin="47190358")
    citizen = key.citizen
    assert_complete(events("key.register")[-1], citizen=citizen, channel="", ip=None, outcome="ok", at=now())
    assert_complete(events("key.activate")[-1], citizen=citizen, channel="", ip=None, outcome="ok", at=now())

    # PIN attempts: ok, wrong, unknown number, then the third wrong one locks.
    identity.check_login_pin(fresh(key), "47190358", ip=IP, channel="web")
    assert_complete(events("pin.attempt")[-1], citizen=citizen, channel="web", ip=IP, outcome="ok", at=now())
    identity.check_login_pin(fresh(key), "58204716", ip=IP, channel="web")
    wrong = events("pin.attempt")[-1]
    assert_complete(wrong, citizen=citizen, channel="web", ip=IP, outcome="wrong", at=now())
    assert wrong.detail["failures"] == 1
    identity.check_login_pin(None, "58204716", ip=IP, channel="web")
    assert_complete(events("pin.attempt")[-1], citizen=None, channel="web", ip=IP, outcome="unknown", at=now())
    clock.travel(dt.timedelta(seconds=1))
    identity.check_login_pin(fresh(key), "58204716", ip=IP, channel="web")
    identity.check_login_pin(fresh(key), "58204716", ip=IP, channel="web")
    locked = events("key.locked")
    assert len(locked) == 1
    assert_complete(locked[0], citizen=citizen, channel="web", ip=IP, outcome="ok", at=now())
    assert locked[0].detail["until"] == (now() + dt.timedelta(minutes=5)).isoformat()
    identity.check_login_pin(fresh(key), "47190358", ip=IP, channel="web")
    assert_complete(events("pin.attempt")[-1], citizen=citizen, channel="web", ip=IP, outcome="locked", at=now())

    # Waited out, three more locks' worth of failures block it; then a counter unlocks it.
    for minutes in (5, 15, 60):
        clock.travel(dt.timedelta(minutes=minutes))
        identity.check_login_pin(fresh(key), "58204716", ip=IP, channel="web")
    blocked = events("key.blocked")
    assert len(blocked) == 1
    assert_complete(blocked[0], citizen=citizen, channel="web", ip=IP, outcome="ok", at=now())
    identity.unlock_key(fresh(key), by="counter", ip="192.0.2.45", channel="counter")
    assert_complete(events("key.unlock")[-1], citizen=citizen, channel="counter", ip="192.0.2.45", outcome="ok", at=now())

    # PIN change.
    identity.change_pin(fresh(key), "36925814", ip=IP, channel="web")
    assert_complete(events("pin.change")[-1], citizen=citizen, channel="web", ip=IP, outcome="ok", at=now())

    # Codes: sent, refused, failed (wrong), used.
    codes.issue_code(fresh(key), purpose="login", transaction="tx", channel="sms", destination=MOBILE, ip=IP)
    assert_complete(events("code.send")[-1], citizen=citizen, channel="sms", ip=IP, outcome="sent", at=now())
    assert events("code.send")[-1].detail["purpose"] == "login"
    codes.issue_code(fresh(key), purpose="login", transaction="tx", channel="sms", destination=MOBILE, ip=IP)
    assert_complete(events("code.send")[-1], citizen=citizen, channel="sms", ip=IP, outcome="cooldown", at=now())
    code = inbox.last_code(MOBILE)
    codes.verify_code(purpose="login", transaction="tx", submitted=f"{(int(code) + 1) % 1_000_000:06d}", ip=IP)
    assert_complete(events("code.verify")[-1], citizen=citizen, channel="sms", ip=IP, outcome="wrong", at=now())
    codes.verify_code(purpose="login", transaction="tx", submitted=code, ip=IP)
    assert_complete(events("code.verify")[-1], citizen=citizen, channel="sms", ip=IP, outcome="ok", at=now())

    # Throttled PIN attempts are recorded too.
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY,
                             "throttles": {**settings.CHAVE_POLICY["throttles"], "pin_attempt_per_ip": (0, 60)}}
    identity.check_login_pin(fresh(key), "36925814", ip=IP, channel="web")
    assert_complete(events("pin.attempt")[-1], citizen=citizen, channel="web", ip=IP, outcome="throttled", at=now())


def test_registration_records_who_registered_and_how(clock):
    doc = DocumentRef("cc", "PT", "12345678")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Ana Costa", given_name="Ana", family_name="Costa",
                                        birth_date=dt.date(1980, 5, 17), document_expiry=dt.date(2031, 1, 1)))
    key, temporary = identity.register_citizen(doc, [identity.ContactInput(ContactKind.MOBILE, MOBILE)],
                                               contacts_verified_by="counter Lisboa", ip=IP, channel="counter")
    event = events("key.register")[0]
    assert_complete(event, citizen=key.citizen, channel="counter", ip=IP, outcome="ok", at=clock.now())
    assert event.detail == {"by": "counter Lisboa", "temporary_pin": True}
    assert temporary not in str(event.detail)


@pytest.mark.parametrize(
    "detail",
    [{"pin": "4719"}, {"new_pin": "4719"}, {"code": "123456"}, {"sms_code": "123456"}, {"smsCode": "123456"},
     {"otp": "123456"}, {"password": "x"}, {"api_token": "x"}, {"secret": "x"}, {"body": "your code is 123456"},
     {"PIN": 4719}, {"pin2": "4719"}],
)
def test_detail_named_like_a_secret_is_refused(detail):
    before = AuditEvent.objects.count()  # `chave migrate` may have recorded the SAML key it made
    with pytest.raises(ValueError):
        audit.record("test.event", outcome="ok", **detail)
    assert AuditEvent.objects.count() == before


def test_safe_detail_is_kept():
    event = audit.record("test.event", outcome="ok", purpose="login", failures=3, temporary_pin=True, until=None)
    assert AuditEvent.objects.get(pk=event.pk).detail == {"purpose": "login", "failures": 3, "temporary_pin": True}


def test_a_malformed_client_address_does_not_break_the_request():
    event = audit.record("test.event", outcome="ok", ip="not-an-ip, 10.0.0.1")
    assert AuditEvent.objects.get(pk=event.pk).ip is None
    assert audit.record("test.event", ip=" 2001:db8::1 ").ip == "2001:db8::1"


def test_events_are_append_only():
    event = audit.record("test.event", outcome="ok")
    event.outcome = "changed"
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).outcome == "ok"


def test_pins_and_codes_reach_neither_the_audit_nor_the_logs(make_citizen, clock, inbox, caplog):
    caplog.set_level(logging.DEBUG)
    # A temporary PIN, returned once, then the citizen's own.
    doc = DocumentRef("cc", "PT", "87654321")
    LocalRecords().store(IdentityRecord(doc=doc, full_name="Rui Sousa", given_name="Rui", family_name="Sousa",
                                        birth_date=dt.date(1975, 1, 2), document_expiry=dt.date(2031, 1, 1)))
    rui, temporary = identity.register_citizen(doc, [identity.ContactInput(ContactKind.MOBILE, "+351936000111")],
                                               contacts_verified_by="test", ip=IP)
    pins_used = [temporary, "58204716", "36925814"]
    assert identity.check_login_pin(fresh(rui), temporary, ip=IP).ok
    identity.check_login_pin(fresh(rui), "58204716", ip=IP)
    with pytest.raises(ValidationError):
        identity.change_pin(fresh(rui), "12345678", ip=IP)  # refused: a run
    pins_used.append("12345678")
    identity.change_pin(fresh(rui), "36925814", ip=IP)
    assert identity.check_login_pin(fresh(rui), "36925814", ip=IP).ok

    codes_used = []
    for tx in ("a", "b"):
        codes.issue_code(fresh(rui), purpose="login", transaction=tx, channel="sms", destination="+351936000111", ip=IP)
        code = inbox.last_code("+351936000111")
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        codes.verify_code(purpose="login", transaction=tx, submitted=wrong, ip=IP)
        codes.verify_code(purpose="login", transaction=tx, submitted=code, ip=IP)
        codes_used += [code, wrong]

    rows = "\n".join(
        " ".join(str(v) for v in row)
        for row in AuditEvent.objects.values_list("event", "outcome", "channel", "ip", "detail", "at")
    )
    assert AuditEvent.objects.count() > 10 and rows
    logs = caplog.text
    for secret in pins_used + codes_used:
        pattern = rf"(?<![0-9]){re.escape(secret)}(?![0-9])"
        assert not re.search(pattern, rows), f"{secret} is in the audit log"
        assert not re.search(pattern, logs), f"{secret} is in the logs"
