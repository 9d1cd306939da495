"""Key housekeeping: reminders, expiry, revocation for disuse; idempotent and safe in parallel."""

import datetime as dt
import json

import pytest
from django.core.management import call_command
from django.utils import timezone

from chave import policy
from chave.audit.models import AuditEvent
from chave.counter import housekeeping
from chave.counter.models import KeyReminder
from chave.delivery.messages import notice_message
from chave.identity.models import Key, KeyStatus
from chave.throttle.tests.parallel import run_together

pytestmark = pytest.mark.django_db(transaction=True)


def days(n):
    return dt.timedelta(days=n)


def notice(event, day):
    """The reminder as the citizen reads it: the day it happens, at noon, in their language."""
    return notice_message(event, language="pt-pt", until=timezone.make_aware(dt.datetime.combine(day, dt.time(12)))).body


def test_a_key_is_reminded_once_then_expires_after_its_validity(make_citizen, clock, outbox):
    # A Citizen Card expiring in 40 days: the key is valid 30 days more.
    key = make_citizen(phone="+351912345678", document_expiry=clock.today() + days(40))
    lead = policy.get("key_reminder_days")
    assert housekeeping.run().as_dict() == {"expiry_reminders": 0, "inactivity_reminders": 0, "expired": 0,
                                            "revoked": 0, "abandoned_registrations": 0, "sso_sessions_ended": 0,
                                            "app_records_forgotten": 0, "stalled_deliveries_closed": 0,
                                            "expired_records_forgotten": 0}
    clock.travel(days(70 - lead))
    assert housekeeping.run().expiry_reminders == 1
    assert outbox.last("+351912345678").body == notice("key_expiring", key.valid_until)
    clock.travel(days(3))
    assert housekeeping.run().expiry_reminders == 0  # reminded once
    clock.travel(days(lead))
    assert housekeeping.run().expired == 1
    key.refresh_from_db()
    assert key.status == KeyStatus.EXPIRED and not key.contacts.filter(live=True).exists()
    assert housekeeping.run().expired == 0
    assert AuditEvent.objects.filter(event="key.expire", citizen=key.citizen).count() == 1


def test_an_unused_key_is_reminded_then_revoked_unless_used(make_citizen, clock, outbox):
    unused = make_citizen(phone="+351912345678")
    used = make_citizen(phone="+351912345679")
    period, lead = policy.get("inactivity_revoke_days"), policy.get("key_reminder_days")
    clock.travel(days(period - lead + 1))
    result = housekeeping.run()
    assert result.inactivity_reminders == 2 and result.revoked == 0
    due = timezone.localdate(unused.created_at + days(period))
    assert outbox.last("+351912345678").body == notice("key_unused", due)
    Key.objects.filter(pk=used.pk).update(last_used_at=clock.now())  # the citizen signed in
    clock.travel(days(lead))
    result = housekeeping.run()
    assert result.revoked == 1
    assert Key.objects.get(pk=unused.pk).status == KeyStatus.CANCELLED
    assert Key.objects.get(pk=used.pk).status == KeyStatus.ACTIVE


def test_inactivity_rule_switched_off(make_citizen, clock, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "inactivity_revoke_days": 0}
    key = make_citizen()
    clock.travel(days(5000 // 2))  # document valid 10 years; nothing expires yet
    assert housekeeping.run().as_dict() == {"expiry_reminders": 0, "inactivity_reminders": 0, "expired": 0,
                                            "revoked": 0, "abandoned_registrations": 0, "sso_sessions_ended": 0,
                                            "app_records_forgotten": 0, "stalled_deliveries_closed": 0,
                                            "expired_records_forgotten": 0}
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE


def test_parallel_runs_do_each_thing_once(make_citizen, clock):
    keys = [make_citizen(phone=f"+35191234500{i}", document_expiry=clock.today() + days(10 + i)) for i in range(3)]
    clock.travel(days(20))  # all in the reminder window
    results = run_together(4, lambda i: housekeeping.run())
    assert sum(r.expiry_reminders for r in results) == 3
    assert KeyReminder.objects.count() == 3
    clock.travel(days(60))
    results = run_together(4, lambda i: housekeeping.run())
    assert sum(r.expired for r in results) == 3
    assert AuditEvent.objects.filter(event="key.expire").count() == 3
    assert all(Key.objects.get(pk=k.pk).status == KeyStatus.EXPIRED for k in keys)


def test_command_prints_what_it_did(make_citizen, clock, capsys):
    make_citizen(document_expiry=clock.today() + days(1))
    clock.travel(days(40))
    call_command("housekeeping", "--json")
    assert json.loads(capsys.readouterr().out)["expired"] == 1
    call_command("housekeeping")
    assert "expired: 0" in capsys.readouterr().out


def test_a_registration_left_pending_is_cancelled_and_frees_the_number_it_held(make_citizen, clock):
    squatter = make_citizen(phone="+351912000077", verified=False)
    assert squatter.status == KeyStatus.PENDING
    clock.travel(days(6))
    assert housekeeping.run().abandoned_registrations == 0  # still within pending_key_days
    clock.travel(days(2))
    assert housekeeping.run().abandoned_registrations == 1
    assert housekeeping.run().abandoned_registrations == 0  # once
    assert Key.objects.get(pk=squatter.pk).status == KeyStatus.CANCELLED
    owner = make_citizen(phone="+351912000077")  # the number's owner can now register it
    assert owner.status == KeyStatus.ACTIVE
