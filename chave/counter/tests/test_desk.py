"""The counter desk: find a citizen, see their key, unlock and cancel it, each action traceable."""

import datetime as dt

import pytest

from chave.audit.models import AuditEvent
from chave.counter.models import CounterAction
from chave.delivery.messages import notice_message
from chave.identity import services as identity
from chave.identity.models import KeyStatus, mask
from chave.identity.registry import DocumentRef, IdentityRecord, LocalRecords

pytestmark = pytest.mark.django_db

REASON = "Citizen forgot the PIN and is here in person"


def presented(prefix, nic, **extra):
    return {f"{prefix}-presented_type": "cc", f"{prefix}-presented_country": "PT",
            f"{prefix}-presented_number": nic, f"{prefix}-reason": REASON, **extra}


def block(key):
    identity.block_key(key, by="test")
    key.refresh_from_db()
    assert key.status == KeyStatus.BLOCKED
    return key


def test_find_by_nic_mobile_and_foreign_document(staff_client, make_citizen, clock):
    client = staff_client("clerk")
    key = make_citizen(nic="12345678", phone="+351912000111", email="rita@example.pt")
    LocalRecords().store(IdentityRecord(doc=DocumentRef("passport", "BR", "FX123456"), full_name="João Estrangeiro",
                                        given_name="João", family_name="Estrangeiro", birth_date=dt.date(1990, 1, 2),
                                        document_expiry=clock.today() + dt.timedelta(days=900), nif="123456789"))
    foreign, _ = identity.register_citizen(DocumentRef("passport", "BR", "FX123456"),
                                           [identity.ContactInput("mobile", "+351913000222")], pin="4719",
                                           contacts_verified_by="test")
    for query in ({"q": "12345678"}, {"q": "912 000 111"}, {"q": "rita@example.pt"}):
        page = client.post("/counter/find/", query).content.decode()
        assert f"/counter/citizen/{key.citizen.pk}/" in page, query
    page = client.post("/counter/find/", {"doc_type": "passport", "doc_country": "br", "doc_number": "fx 123456"})
    assert f"/counter/citizen/{foreign.citizen.pk}/" in page.content.decode()
    page = client.post("/counter/find/", {"q": "87654321"}).content.decode()
    assert 'id="no-results"' in page
    assert AuditEvent.objects.filter(event="counter.find").count() == 5
    refused = client.post("/counter/find/", {"q": "9" * 300, "doc_type": "no-such-type"})  # a search that is no search
    assert refused.status_code == 400 and AuditEvent.objects.filter(event="counter.find").count() == 5


def test_citizen_page_shows_status_masked_contacts_and_history(staff_client, make_citizen):
    client = staff_client("clerk")
    key = make_citizen(phone="+351912000111", email="rita@example.pt")
    page = client.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert 'data-status="active"' in page and "Maria Teste Silva" in page
    assert "+351912000111" not in page and "rita@example.pt" not in page
    assert mask("mobile", "+351912000111") in page and mask("email", "rita@example.pt") in page
    assert "Key registered" in page and "key.register" not in page  # the history, in words
    assert AuditEvent.objects.filter(event="counter.view", citizen=key.citizen).count() == 1


def test_unlock_records_staff_counter_document_and_reason(staff_client, make_citizen):
    client = staff_client("clerk", counter="Loja Aveiro")
    key = block(make_citizen(nic="12345678", phone="+351912000444", language="en"))
    response = client.post(f"/counter/citizen/{key.citizen.pk}/unlock", presented("unlock", "12345678 0 ZZ4"))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and key.pin_failures == 0
    action = CounterAction.objects.get()
    assert (action.kind, action.counter, action.document_type, action.reason) == ("unlock", "Loja Aveiro", "cc", REASON)
    assert action.staff.username == client.login_as.username
    event = AuditEvent.objects.get(event="counter.unlock")
    assert event.detail["staff"] == client.login_as.username and event.detail["counter"] == "Loja Aveiro"
    assert event.detail["reason"] == REASON and event.detail["document"].startswith("cc PT 12345678")
    unlock = AuditEvent.objects.get(event="key.unlock")
    assert unlock.channel == "counter" and unlock.detail["by"] == f"staff:{client.login_as.username}"
    # The citizen sees what a clerk did alone.
    from chave.delivery.models import OutboundMessage

    assert OutboundMessage.objects.filter(  # queued with the unlock
        destination="+351912000444", kind="notice",
        body_redacted__contains="was unlocked at a counter. If this was not you").count() == 1


@pytest.mark.parametrize(("data", "message"), [
    ({"unlock-presented_number": "87654321"}, "This is not the citizen&#x27;s registered document"),
    ({"unlock-reason": "because"}, "The reason needs at least 10 characters"),
    ({"unlock-presented_type": ""}, "Choose the document presented."),
])
def test_unlock_refuses_without_the_right_document_or_a_reason(staff_client, make_citizen, data, message):
    client = staff_client("clerk")
    key = block(make_citizen(nic="12345678"))
    response = client.post(f"/counter/citizen/{key.citizen.pk}/unlock", {**presented("unlock", "12345678"), **data})
    assert response.status_code == 400 and message in response.content.decode()
    key.refresh_from_db()
    assert key.status == KeyStatus.BLOCKED and not CounterAction.objects.exists()


def test_every_problem_of_an_action_is_reported_at_once(staff_client, make_citizen):
    client = staff_client("clerk")
    key = block(make_citizen(nic="12345678"))
    response = client.post(f"/counter/citizen/{key.citizen.pk}/unlock", {
        "unlock-presented_type": "cc", "unlock-presented_country": "PT", "unlock-presented_number": "87654321",
        "unlock-reason": "lost"})
    summary = response.content.decode().split('class="error-summary"')[1].split("</div>")[0]
    assert response.status_code == 400
    assert "This is not the citizen&#x27;s registered document" in summary
    assert "The reason needs at least 10 characters" in summary
    key.refresh_from_db()
    assert key.status == KeyStatus.BLOCKED and not CounterAction.objects.exists()


def test_a_search_is_posted_and_a_query_string_is_not_read(staff_client, make_citizen):
    client = staff_client("clerk")
    key = make_citizen(nic="12345678")
    page = client.get("/counter/find/", {"q": "12345678"}).content.decode()
    assert f"/counter/citizen/{key.citizen.pk}/" not in page and 'method="post"' in page
    assert not AuditEvent.objects.filter(event="counter.find").exists()


def test_unlock_of_an_active_key_is_refused(staff_client, make_citizen):
    client = staff_client("clerk")
    key = make_citizen(nic="12345678")
    response = client.post(f"/counter/citizen/{key.citizen.pk}/unlock", presented("unlock", "12345678"))
    assert response.status_code == 400 and "neither locked nor blocked" in response.content.decode()


@pytest.mark.django_db(transaction=True)  # the delivery worker runs
def test_cancel_releases_contacts_and_tells_the_citizen(staff_client, make_citizen, outbox):
    client = staff_client("clerk")
    key = make_citizen(nic="12345678", phone="+351912000111")
    # The first press asks to confirm (what cannot be undone), and changes nothing yet.
    response = client.post(f"/counter/citizen/{key.citizen.pk}/cancel", presented("cancel", "12345678"))
    assert response.status_code == 200 and "This cannot be undone" in response.content.decode()
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and not CounterAction.objects.exists()
    response = client.post(f"/counter/citizen/{key.citizen.pk}/cancel",
                           presented("cancel", "12345678", confirmed="yes"))
    assert response.status_code == 302
    key.refresh_from_db()
    assert key.status == KeyStatus.CANCELLED and not key.contacts.filter(live=True).exists()
    assert outbox.last("+351912000111").body == notice_message("key_cancelled", language="pt-pt").body
    assert CounterAction.objects.get().kind == "cancel"
    assert AuditEvent.objects.filter(event="counter.cancel").count() == 1


def test_an_auditor_sees_but_changes_nothing(staff_client, make_citizen):
    client = staff_client("auditor")
    key = block(make_citizen(nic="12345678"))
    page = client.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert 'data-status="blocked"' in page and "/unlock" not in page
    for action in ("unlock", "cancel", "new-pin"):
        prefix = {"new-pin": "pin"}.get(action, action)
        response = client.post(f"/counter/citizen/{key.citizen.pk}/{action}",
                               presented(prefix, "12345678", **{"pin-address": "Rua A 1\n1000-001 Lisboa"}))
        assert response.status_code == 403
    key.refresh_from_db()
    assert key.status == KeyStatus.BLOCKED and not CounterAction.objects.exists()


def test_every_action_leaves_the_same_trail(make_staff, make_citizen):
    """Each kind of action: a counter action and an audit event naming the member of staff, the
    counter, the document presented and the reason; the identity event says who and where."""
    from chave.counter import letters, services

    clerk = make_staff("clerk", counter="Loja Faro").staff
    key = block(make_citizen(nic="12345678"))
    presented = services.Presented("cc", "PT", "12345678", REASON)
    services.unlock(clerk, key, presented)
    letter = letters.issue_new_pin(clerk, key, presented, address="Rua A 1\n8000-001 Faro")
    letters.cancel_letter(letter, clerk, reason="Lost in the post, says the citizen", presented=presented)
    services.cancel(clerk, key, presented)
    kinds = ["unlock", "new_pin", "letter_cancel", "cancel"]
    assert [a.kind for a in CounterAction.objects.order_by("id")] == kinds
    for kind in kinds:
        event = AuditEvent.objects.get(event=f"counter.{kind}")
        assert event.citizen == key.citizen and event.channel == "counter"
        assert event.detail["staff"] == clerk.username and event.detail["counter"] == "Loja Faro"
        assert event.detail["document"] == "cc PT 12345678" and event.detail["reason"]
    for event in ("key.unlock", "pin.temporary", "letter.cancel", "key.cancel"):
        assert AuditEvent.objects.get(event=event).detail["by"] == f"staff:{clerk.username}", event


def test_find_by_name_accents_and_case_aside_in_alphabetical_order(staff_client, make_citizen, settings):
    client = staff_client("clerk")
    simoes = make_citizen(phone="+351912000201", full_name="José Simões Antunes", birth_date=dt.date(1971, 3, 14))
    silva = make_citizen(phone="+351912000202", full_name="José Silva")
    make_citizen(phone="+351912000203", full_name="Joana Simões")
    page = client.post("/counter/find/", {"q": "  jose  SI "}).content.decode()
    first, second = (page.index(f"/counter/citizen/{k.citizen.pk}/") for k in (silva, simoes))
    assert first < second and "Joana" not in page
    assert "born 14 March 1971" in page  # which José is which: the date of birth, as the language writes it
    page = client.post("/counter/find/", {"q": "José Simões"}).content.decode()
    assert f"/counter/citizen/{simoes.citizen.pk}/" in page and f"/counter/citizen/{silva.citizen.pk}/" not in page
    assert 'id="more-results"' not in page
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "counter_name_search_max": 2}
    page = client.post("/counter/find/", {"q": "jo"}).content.decode()
    assert page.count("/counter/citizen/") == 2 and 'id="more-results"' in page
    assert 'id="no-results"' in client.post("/counter/find/", {"q": "Zacarias"}).content.decode()
    simoes.citizen.full_name = "José Simões Branco"
    simoes.citizen.save(update_fields=["full_name"])
    simoes.citizen.refresh_from_db()
    assert simoes.citizen.name_key == "jose simoes branco"
