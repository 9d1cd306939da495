"""A supervisor reverses a clerk's action within the day and reads the daily report per counter."""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError

from chave.audit.models import AuditEvent
from chave.counter import letters, services
from chave.counter.models import CounterAction, Letter, LetterStatus
from chave.identity import services as identity
from chave.identity.models import Key, KeyStatus

pytestmark = pytest.mark.django_db

REASON = "Citizen identified with their card"


def doc(nic):
    return services.Presented("cc", "PT", nic, REASON)


def blocked(make_citizen, nic):
    key = make_citizen(nic=nic, phone=None, email=f"c{nic}@example.pt")
    identity.block_key(key, by="test")
    key.refresh_from_db()
    return key


def test_a_supervisor_reverses_an_unlock_from_the_report(staff_client, make_staff, make_citizen, clock):
    clerk = make_staff("clerk", counter="Loja Aveiro").staff
    key = blocked(make_citizen, "12345678")
    action = services.unlock(clerk, key, doc("12345678"))
    client = staff_client("supervisor", counter="Loja Aveiro")
    page = client.get("/counter/report/").content.decode()
    assert f'data-action="{action.pk}"' in page and f"/counter/actions/{action.pk}/reverse" in page
    response = client.post(f"/counter/actions/{action.pk}/reverse", {"reason": "Unlocked without a proper check"})
    assert response.status_code == 302
    assert Key.objects.get(pk=key.pk).status == KeyStatus.BLOCKED
    action.refresh_from_db()
    assert action.reversed_at and action.reversed_by == client.login_as.staff
    event = AuditEvent.objects.get(event="counter.reverse")
    assert event.detail["staff"] == client.login_as.username and event.detail["kind"] == "unlock"
    # Reversed once only.
    with pytest.raises(ValidationError):
        services.reverse(client.login_as.staff, action, "Again, by mistake")


def test_reversing_a_new_pin_cancels_the_letter_and_voids_the_pin(make_staff, make_citizen):
    clerk = make_staff("clerk").staff
    supervisor = make_staff("supervisor").staff
    key = make_citizen(nic="12345678")
    letters.issue_new_pin(clerk, key, doc("12345678"), address="Rua A 1\n1000-001 Lisboa")
    action = CounterAction.objects.get(kind="new_pin")
    services.reverse(supervisor, action, "The citizen was not the holder")
    letter = Letter.objects.get()
    assert letter.status == LetterStatus.CANCELLED and not letter.pin_sealed
    assert Key.objects.get(pk=key.pk).pin_hash == ""


def test_only_todays_actions_and_only_by_a_supervisor(staff_client, make_staff, make_citizen, clock):
    clerk = make_staff("clerk").staff
    key = blocked(make_citizen, "12345678")
    action = services.unlock(clerk, key, doc("12345678"))
    with pytest.raises(PermissionError):
        services.reverse(make_staff("clerk").staff, action, "A clerk cannot do this")
    client = staff_client("clerk")
    assert client.post(f"/counter/actions/{action.pk}/reverse", {"reason": "A clerk cannot do this"}).status_code == 403
    auditor = staff_client("auditor")
    assert auditor.post(f"/counter/actions/{action.pk}/reverse", {"reason": "An auditor cannot do this"}).status_code == 403
    clock.travel(dt.timedelta(days=1))
    with pytest.raises(ValidationError, match="today"):
        services.reverse(make_staff("supervisor").staff, action, "Too late for this one")
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE


def test_a_cancellation_is_not_reversible(make_staff, make_citizen):
    clerk = make_staff("clerk").staff
    key = make_citizen(nic="12345678")
    action = services.cancel(clerk, key, doc("12345678"))
    supervisor = make_staff("supervisor").staff
    assert not services.may_reverse(action, supervisor)
    with pytest.raises(ValidationError):
        services.reverse(supervisor, action, "Changed their mind")


def test_a_supervisor_reverses_only_at_their_own_counter(staff_client, make_staff, make_citizen):
    key = blocked(make_citizen, "12345678")
    action = services.unlock(make_staff("clerk", counter="Loja Aveiro").staff, key, doc("12345678"))
    elsewhere = staff_client("supervisor", counter="Loja Porto")
    assert f"/counter/actions/{action.pk}/reverse" not in elsewhere.get("/counter/report/").content.decode()
    elsewhere.post(f"/counter/actions/{action.pk}/reverse", {"reason": "Not my counter, though"})
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE
    assert CounterAction.objects.get().reversed_at is None


def test_daily_report_counts_actions_per_counter(staff_client, make_staff, make_citizen, clock):
    aveiro, porto = make_staff("clerk", counter="Loja Aveiro").staff, make_staff("clerk", counter="Loja Porto").staff
    for i, (clerk, nic) in enumerate([(aveiro, "12345678"), (aveiro, "11111111"), (porto, "22222222")]):
        services.unlock(clerk, blocked(make_citizen, nic), doc(nic))
    rows = services.daily_report(clock.today())
    assert [(r.counter, r.kind, r.count) for r in rows] == [("Loja Aveiro", "unlock", 2), ("Loja Porto", "unlock", 1)]
    assert services.daily_report(clock.today() - dt.timedelta(days=1)) == []
    page = staff_client("auditor").get("/counter/report/").content.decode()
    assert '<td>Loja Aveiro</td><td data-kind="unlock">Unlock</td><td>2</td>' in page
    assert "/reverse" not in page  # an auditor reads only
