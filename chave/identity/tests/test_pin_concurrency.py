"""Wrong PINs sent all at once are counted exactly (SQLite: IMMEDIATE transactions; PostgreSQL:
row locks), so a burst can neither skip the lock nor count past it."""

import datetime as dt

import pytest

from chave.audit.models import AuditEvent
from chave.delivery.models import OutboundMessage
from chave.identity import services
from chave.identity.models import Key, KeyStatus
from chave.throttle.tests.parallel import run_together

pytestmark = pytest.mark.django_db(transaction=True)

RIGHT, WRONG = "47190358", "58204716"


@pytest.fixture
def roomy_ip_throttle(settings):
    # All threads come from one address; the per-IP throttle is not what is under test here.
    throttles = {**settings.CHAVE_POLICY["throttles"], "pin_attempt_per_ip": (10_000, 15 * 60)}
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": throttles}


def test_50_parallel_wrong_pins_count_exactly_three_and_lock_once(make_citizen, clock, roomy_ip_throttle):
    key = make_citizen(phone="+351912345678", pin=RIGHT)
    notices_before = OutboundMessage.objects.filter(citizen=key.citizen, kind="notice").count()

    def wrong_pin(i):
        return services.check_login_pin(Key.objects.select_related("citizen").get(pk=key.pk), WRONG,
                                        ip="198.51.100.7", channel="web")

    decisions = run_together(50, wrong_pin)

    assert not any(d.ok for d in decisions)
    reasons = [d.reason for d in decisions]
    assert reasons.count("wrong") == 2 and reasons.count("locked") == 48, reasons
    key.refresh_from_db()
    assert key.pin_failures == 3
    assert key.status == KeyStatus.LOCKED
    assert key.locked_until == clock.now() + dt.timedelta(minutes=5)
    assert OutboundMessage.objects.filter(citizen=key.citizen, kind="notice").count() == notices_before + 1
    assert AuditEvent.objects.filter(event="key.locked", citizen=key.citizen).count() == 1
    attempts = AuditEvent.objects.filter(event="pin.attempt", citizen=key.citizen)
    assert attempts.count() == 50
    assert attempts.filter(outcome="wrong").count() == 3
    assert attempts.filter(outcome="locked").count() == 47


def test_parallel_wrong_pins_on_a_key_one_step_from_the_block(make_citizen, clock, roomy_ip_throttle):
    key = make_citizen(phone="+351912345678", pin=RIGHT)
    for count, wait in ((3, 5), (1, 15), (1, 60)):  # three locks, each waited out
        for _ in range(count):
            services.check_login_pin(Key.objects.get(pk=key.pk), WRONG)
        clock.travel(dt.timedelta(minutes=wait))
    assert Key.objects.get(pk=key.pk).pin_failures == 5

    decisions = run_together(20, lambda i: services.check_login_pin(Key.objects.get(pk=key.pk), WRONG))

    assert [d.reason for d in decisions].count("blocked") == 20
    key.refresh_from_db()
    assert (key.status, key.pin_failures) == (KeyStatus.BLOCKED, 6)
    assert AuditEvent.objects.filter(event="key.blocked", citizen=key.citizen).count() == 1


def test_parallel_right_pins_all_succeed(make_citizen, roomy_ip_throttle):
    key = make_citizen(phone="+351912345678", pin=RIGHT)
    Key.objects.filter(pk=key.pk).update(pin_failures=2)
    decisions = run_together(20, lambda i: services.check_login_pin(Key.objects.get(pk=key.pk), RIGHT))
    assert all(d.ok for d in decisions)
    key.refresh_from_db()
    assert (key.status, key.pin_failures) == (KeyStatus.ACTIVE, 0)
