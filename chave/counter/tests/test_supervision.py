"""A supervisor reverses a clerk's action within the day and reads the daily report per counter."""

import datetime as dt
import io
import json

import pytest
from django.utils import translation
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from chave.audit.models import AuditEvent
from chave.counter import letters, services
from chave.counter.models import CounterAction, Letter, LetterStatus
from chave.identity import services as identity
from chave.identity.models import Key, KeyStatus
from chave.login.tests.pages import sign_in

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


def show(who: str, *args) -> str:

    out = io.StringIO()
    with translation.override("en"):
        call_command("citizen", "show", who, *args, stdout=out)
    return out.getvalue()


def notices(phone: str) -> list[str]:
    from chave.delivery.models import OutboundMessage

    return [m.body_redacted for m in OutboundMessage.objects.filter(destination=phone, kind="notice")]


def test_reversing_a_new_pin_gives_back_the_previous_pin_and_tells_the_citizen(make_staff, make_citizen):
    clerk = make_staff("clerk").staff
    supervisor = make_staff("supervisor").staff
    key = make_citizen(nic="12345678", phone="+351912000555", pin="4719", language="en")
    letters.issue_new_pin(clerk, key, doc("12345678"), address="Rua A 1\n1000-001 Lisboa")
    assert sign_in(Client(), "912 000 555", pin="4719").status_code != 302  # replaced by the letter's
    action = CounterAction.objects.get(kind="new_pin")
    services.reverse(supervisor, action, "The citizen was not the holder")
    letter = Letter.objects.get()
    assert letter.status == LetterStatus.CANCELLED and not letter.pin_sealed and not letter.previous_pin_sealed
    # The citizen's own PIN opens the key again; they are told so; the CLI says so.
    assert sign_in(Client(), "912 000 555", pin="4719").status_code == 302
    assert sum("your previous PIN works again" in text for text in notices("+351912000555")) == 1
    assert json.loads(show("12345678", "--json"))["key"]["pin"] == "chosen"
    assert AuditEvent.objects.get(event="pin.restore").detail["by"] == f"staff:{supervisor.username}"


def test_reversing_a_new_pin_when_there_was_none_says_to_ask_for_one(make_staff, make_citizen):
    clerk = make_staff("clerk").staff
    supervisor = make_staff("supervisor").staff
    key = make_citizen(nic="12345678", phone="+351912000555", language="en")
    lost = letters.issue_new_pin(clerk, key, doc("12345678"), address="Rua A 1\n1000-001 Lisboa")
    letters.cancel_letter(lost, clerk, reason="Lost in the post, says the citizen", presented=doc("12345678"))
    letters.issue_new_pin(clerk, key, doc("12345678"), address="Rua A 1\n1000-001 Lisboa")
    services.reverse(supervisor, CounterAction.objects.filter(kind="new_pin").latest("id"), "Issued by mistake today")
    assert Key.objects.get(pk=key.pk).pin_hash == ""
    assert sum("Ask for a new PIN at a counter" in text for text in notices("+351912000555")) == 1
    assert json.loads(show("12345678", "--json"))["key"]["pin"] == "none"
    assert "none: a new PIN must be issued" in show("12345678")


def test_the_previous_pin_is_kept_for_the_day_only(make_staff, make_citizen, clock):
    from chave.counter import housekeeping

    key = make_citizen(nic="12345678")
    letter = letters.issue_new_pin(make_staff("clerk").staff, key, doc("12345678"), address="Rua A 1\n1000-001 Lisboa")
    housekeeping.run()
    assert Letter.objects.get(pk=letter.pk).previous_pin_sealed
    clock.travel(dt.timedelta(days=1))
    housekeeping.run()
    assert not Letter.objects.get(pk=letter.pk).previous_pin_sealed


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
