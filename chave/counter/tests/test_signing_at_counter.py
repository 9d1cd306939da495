"""Signing activated at the counter: the clerk checks the document and asks; the citizen types the
signing PIN twice on the citizen screen (the clerk never sees it); the real SoftHSM2 token holds the
new key; the same rules, audit and notice as online activation, and a counter action beside them."""

from __future__ import annotations

import pytest

from chave.audit.models import AuditEvent
from chave.counter.models import CounterAction
from chave.identity import services as identity
from chave.signing import services as signing
from chave.signing.models import SigningCredential

from .screen import choose_pin, paired_screen, screen_task

pytestmark = pytest.mark.django_db(transaction=True)  # the outbox worker runs
NIC, PHONE, LOGIN_PIN, SIGNING_PIN = "12345678", "+351912000333", "4719", "5820"
REASON = "The citizen wants to sign documents"


def ask(desk, key, **data):
    return desk.post(f"/counter/citizen/{key.citizen.pk}/signing", {
        "signing-presented_type": "cc", "signing-presented_country": "PT", "signing-presented_number": NIC,
        "signing-reason": REASON, **data})


def test_the_citizen_chooses_the_signing_pin_on_the_citizen_screen(signing_pki, staff_client, make_citizen, outbox):
    key = make_citizen(nic=NIC, phone=PHONE, pin=LOGIN_PIN)
    desk = staff_client("clerk", counter="Loja Aveiro")
    page = desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert 'id="task-activate_signing"' in page and 'id="signing-state">Not active' in page

    # Without a paired screen nothing starts; then it does, and the clerk's page waits.
    refused = ask(desk, key)
    assert refused.status_code == 400 and "Pair the citizen screen of your desk first." in refused.content.decode()
    device = paired_screen(desk)
    assert ask(desk, key).status_code == 302
    assert 'id="turn-waiting"' in desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert screen_task(device) == "screen-task"
    assert "Choose your signing PIN" in device.get("/counter/screen/").content.decode()

    # The citizen's mistakes are theirs to correct on the screen; nothing is activated meanwhile.
    for pin, again, problem in ((SIGNING_PIN, "5821", "The two PINs differ"),
                                (LOGIN_PIN, LOGIN_PIN, "The signing PIN must differ from the login PIN."),
                                ("1234", "1234", "")):
        response = choose_pin(device, pin, again)
        assert response.status_code == 400 and problem in response.content.decode()
        assert signing.active_credential(key.citizen) is None
    response = choose_pin(device, SIGNING_PIN)
    assert 'id="screen-thanks"' in response.content.decode()

    credential = SigningCredential.objects.get()
    assert credential.is_active and not credential.pin_must_change
    assert signing.check_signing_pin(credential, SIGNING_PIN).ok
    page = desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    assert 'id="turn-waiting"' not in page and 'id="task-activate_signing"' not in page
    assert 'id="signing-state">Active, certificate valid until' in page
    assert SIGNING_PIN not in page
    # The same trail as online, said by whom and where; a counter action beside it; the citizen told.
    event = AuditEvent.objects.get(event="signing.activate")
    assert (event.channel, event.detail["by"]) == ("counter", f"staff:{desk.login_as.username}")
    action = CounterAction.objects.get()
    assert (action.kind, action.counter, action.reason) == ("signing", "Loja Aveiro", REASON)
    assert action.detail == {"credential": credential.credential_id}
    assert AuditEvent.objects.filter(event="counter.signing").count() == 1
    assert "assinatura" in outbox.last(PHONE).body.lower()
    for row in AuditEvent.objects.all():
        assert SIGNING_PIN not in str(row.detail)

    # Asked again: refused, the citizen has signing already.
    again = ask(desk, key)
    assert again.status_code == 400 and "Signing is already active" in again.content.decode()


def test_signing_is_not_offered_for_a_blocked_key_nor_to_the_auditor(signing_pki, staff_client, make_citizen):
    key = make_citizen(nic=NIC)
    identity.block_key(key, by="test")
    desk = staff_client("clerk")
    paired_screen(desk)
    assert 'id="task-activate_signing"' not in desk.get(f"/counter/citizen/{key.citizen.pk}/").content.decode()
    refused = ask(desk, key)
    assert refused.status_code == 400 and "Signing needs an active Digital Mobile Key." in refused.content.decode()
    auditor = staff_client("auditor", counter="")
    assert ask(auditor, key).status_code == 403
    assert not SigningCredential.objects.exists() and not CounterAction.objects.exists()
