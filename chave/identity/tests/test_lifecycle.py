"""The key's lifecycle: pending → active ⇄ locked → blocked → (unlocked) active; any → cancelled;
active → expired; and keys unused for 18 months revoked."""

import datetime as dt
import itertools

import pytest

from chave.audit.models import AuditEvent
from chave.identity import services
from chave.identity.models import Contact, IllegalTransition, Key, KeyStatus

S = KeyStatus
AT = dt.datetime(2025, 6, 15, 11, 0, tzinfo=dt.timezone.utc)

# Written from domain.md, not copied from the code: what a key may become from each state.
ALLOWED = {
    (S.PENDING, S.ACTIVE),  # activation
    (S.PENDING, S.CANCELLED),
    (S.ACTIVE, S.LOCKED),  # 3rd, 4th, 5th wrong PIN
    (S.ACTIVE, S.BLOCKED),  # 6th wrong PIN after a lapsed lock
    (S.ACTIVE, S.CANCELLED),
    (S.ACTIVE, S.EXPIRED),
    (S.LOCKED, S.ACTIVE),  # lock lapsed, or unlocked
    (S.LOCKED, S.LOCKED),  # a further failure lengthens the wait
    (S.LOCKED, S.BLOCKED),
    (S.LOCKED, S.CANCELLED),
    (S.LOCKED, S.EXPIRED),
    (S.BLOCKED, S.ACTIVE),  # unlocked with the Citizen Card or at a counter
    (S.BLOCKED, S.CANCELLED),
    (S.BLOCKED, S.EXPIRED),
    (S.EXPIRED, S.CANCELLED),
}
PAIRS = list(itertools.product(list(S), repeat=2))


def fresh(status) -> Key:
    return Key(status=status, valid_until=dt.date(2030, 1, 1), created_at=AT)


@pytest.mark.parametrize("current, target", [p for p in PAIRS if p in ALLOWED])
def test_allowed_transition(current, target):
    key = fresh(current)
    until = AT + dt.timedelta(minutes=5)
    key.transition(target, at=AT, locked_until=until)
    assert key.status == target
    assert key.status_changed_at == AT
    assert key.locked_until == (until if target == S.LOCKED else None)


@pytest.mark.parametrize("current, target", [p for p in PAIRS if p not in ALLOWED])
def test_illegal_transition_is_refused_and_changes_nothing(current, target):
    key = fresh(current)
    with pytest.raises(IllegalTransition) as caught:
        key.transition(target, at=AT)
    assert (caught.value.current, caught.value.target) == (current, target)
    assert key.status == current and key.status_changed_at is None


def test_cancelled_is_final():
    assert not any(current == S.CANCELLED for current, _ in ALLOWED)


def test_activation_time_is_the_first_activation():
    key = fresh(S.PENDING)
    key.transition(S.ACTIVE, at=AT)
    key.transition(S.LOCKED, at=AT + dt.timedelta(hours=1), locked_until=AT + dt.timedelta(hours=2))
    key.transition(S.ACTIVE, at=AT + dt.timedelta(hours=3))
    assert key.activated_at == AT


def test_a_lapsed_lock_reads_as_active():
    key = fresh(S.ACTIVE)
    key.transition(S.LOCKED, at=AT, locked_until=AT + dt.timedelta(minutes=5))
    assert key.effective_status(AT + dt.timedelta(minutes=5) - dt.timedelta(microseconds=1)) == S.LOCKED
    assert key.effective_status(AT + dt.timedelta(minutes=5)) == S.ACTIVE
    assert key.status == S.LOCKED  # reading does not write


def test_a_key_past_its_validity_reads_as_expired_even_with_a_lapsed_lock():
    key = fresh(S.ACTIVE)
    key.valid_until = dt.date(2025, 6, 15)
    assert key.effective_status(AT) == S.ACTIVE  # the last valid day
    assert key.effective_status(AT + dt.timedelta(days=1)) == S.EXPIRED
    key.transition(S.LOCKED, at=AT, locked_until=AT + dt.timedelta(minutes=5))
    assert key.effective_status(AT + dt.timedelta(days=1)) == S.EXPIRED


def test_validity_ends_at_midnight_in_lisbon_not_utc():
    key = fresh(S.ACTIVE)
    key.valid_until = dt.date(2025, 6, 15)
    # 23:30 UTC on the 15th is 00:30 on the 16th in Lisbon (summer time).
    assert key.effective_status(dt.datetime(2025, 6, 15, 23, 30, tzinfo=dt.timezone.utc)) == S.EXPIRED


@pytest.mark.django_db
class TestWithTheDatabase:
    def test_refusals_by_state_even_with_the_right_pin(self, make_citizen, clock):
        key = make_citizen(pin="4719", document_expiry=clock.today() + dt.timedelta(days=10))
        clock.travel(dt.timedelta(days=40))  # card expired 30 days ago, plus the 30 days' grace
        assert services.check_login_pin(key, "4719").reason == "ok"
        clock.travel(dt.timedelta(days=1))
        decision = services.check_login_pin(key, "4719")
        assert (decision.ok, decision.reason) == (False, "expired")

    def test_cancelled_key_refuses_everything_and_cannot_be_cancelled_twice(self, make_citizen):
        key = make_citizen(pin="4719")
        services.cancel_key(key, by="citizen", ip="192.0.2.1")
        key.refresh_from_db()
        assert key.status == S.CANCELLED
        assert not key.contacts.filter(live=True).exists()
        assert services.check_login_pin(key, "4719").reason == "cancelled"
        with pytest.raises(IllegalTransition):
            services.cancel_key(key)
        with pytest.raises(IllegalTransition):
            services.unlock_key(key, by="counter")
        assert AuditEvent.objects.filter(event="key.cancel", citizen=key.citizen, outcome="ok").count() == 1

    def test_only_a_locked_or_blocked_key_can_be_unlocked(self, make_citizen):
        active = make_citizen(pin="4719")
        with pytest.raises(IllegalTransition):
            services.unlock_key(active, by="counter")
        pending = make_citizen(phone="+351936000111", pin="4719", verified=False)
        with pytest.raises(IllegalTransition):
            services.unlock_key(pending, by="counter")
        pending.refresh_from_db()
        assert pending.status == S.PENDING

    def test_activating_needs_a_verified_contact_and_a_pending_key(self, make_citizen):
        from django.core.exceptions import ValidationError

        pending = make_citizen(pin="4719", verified=False)
        with pytest.raises(ValidationError) as caught:
            services.activate_key(pending)
        assert caught.value.code == "no_verified_contact"
        active = make_citizen(phone="+351936000111", pin="4719")
        with pytest.raises(IllegalTransition):
            services.activate_key(active)


@pytest.mark.django_db
class TestUnusedKeys:
    def test_a_key_unused_for_18_months_reads_as_cancelled_and_is_revoked(self, make_citizen, clock):
        unused = make_citizen(phone="+351912345678", pin="4719")
        used = make_citizen(phone="+351936000111", pin="4719")
        clock.travel(dt.timedelta(days=300))
        services.record_login(used, at=clock.now())
        used.refresh_from_db()
        clock.travel(dt.timedelta(days=548 - 300) - dt.timedelta(seconds=1))
        assert services.check_login_pin(unused, "4719").ok
        assert services.revoke_unused_keys() == 0
        clock.travel(dt.timedelta(seconds=1))
        assert services.check_login_pin(unused, "4719").reason == "cancelled"
        assert services.check_login_pin(used, "4719").ok
        assert services.revoke_unused_keys() == 1
        unused.refresh_from_db()
        assert unused.status == S.CANCELLED
        assert not Contact.objects.filter(key=unused, live=True).exists()
        assert AuditEvent.objects.filter(event="key.revoke", citizen=unused.citizen).count() == 1
        # The number is free again for a new key.
        make_citizen(phone="+351912345678", pin="4719")
        assert services.revoke_unused_keys() == 0

    def test_the_rule_can_be_switched_off(self, make_citizen, clock, settings):
        settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "inactivity_revoke_days": 0}
        key = make_citizen(pin="4719")
        clock.travel(dt.timedelta(days=2000))
        assert key.effective_status(clock.now()) == S.ACTIVE
        assert services.revoke_unused_keys() == 0
