"""The Chave app at the counter (a clerk removes a lost phone, with the document and a reason, told
to the citizen) and in signing (the 2-minute signing code goes to the app, naming the documents)."""

from __future__ import annotations

import pytest

from chave.app.models import Device, DeviceStatus
from chave.audit.models import AuditEvent
from chave.counter.models import CounterAction
from chave.delivery.messages import notice_message
from chave.delivery.models import DevOutboxMessage
from chave.login.tests.pages import body
from chave.testing.device import ApiRefused

from .conftest import EMAIL, PHONE

pytestmark = pytest.mark.django_db(transaction=True)


def _presented(key, reason="Telemóvel roubado, pedido da titular"):
    return {"app-presented_type": "cc", "app-presented_country": "PT", "app-presented_number": key.citizen.doc_number,
            "app-reason": reason}


def test_a_clerk_removes_a_device_with_document_and_reason(paired, key, staff_client, outbox):
    clerk = staff_client("clerk")
    citizen_page = body(clerk.get(f"/counter/citizen/{key.citizen.pk}/"))
    assert f'href="/counter/citizen/{key.citizen.pk}/app/"' in citizen_page
    page = body(clerk.get(f"/counter/citizen/{key.citizen.pk}/app/"))
    assert "Telemóvel da Maria" in page
    # A reason too short, a document that is not the citizen's: refused, nothing removed.
    bad = clerk.post(f"/counter/citizen/{key.citizen.pk}/app/", {**_presented(key, "x"), "device": paired.device_id})
    assert bad.status_code == 400
    other = clerk.post(f"/counter/citizen/{key.citizen.pk}/app/",
                       {**_presented(key), "app-presented_number": "99999999", "device": paired.device_id})
    assert other.status_code == 400
    assert Device.objects.get(pk=paired.device_id).status == DeviceStatus.ACTIVE
    done = clerk.post(f"/counter/citizen/{key.citizen.pk}/app/", {**_presented(key), "device": paired.device_id})
    assert done.status_code == 302
    device = Device.objects.get(pk=paired.device_id)
    assert device.status == DeviceStatus.REMOVED and device.removed_by == f"staff:{clerk.login_as.username}"
    action = CounterAction.objects.get(kind="app_remove")
    assert action.reason == "Telemóvel roubado, pedido da titular" and action.detail["device_name"] == "Telemóvel da Maria"
    assert AuditEvent.objects.filter(event="counter.app_remove", citizen=key.citizen).exists()
    outbox.last(PHONE)
    for to in (PHONE, EMAIL):
        assert DevOutboxMessage.objects.filter(to=to, body=notice_message("app_removed", language="pt-pt").body).exists()
    with pytest.raises(ApiRefused) as refused:
        paired.inbox()
    assert refused.value.error == "device_removed"


def test_an_auditor_sees_the_devices_but_cannot_remove(paired, key, staff_client):
    auditor = staff_client("auditor")
    page = body(auditor.get(f"/counter/citizen/{key.citizen.pk}/app/"))
    assert "Telemóvel da Maria" in page and 'id="remove-device"' not in page
    assert auditor.post(f"/counter/citizen/{key.citizen.pk}/app/",
                        {**_presented(key), "device": paired.device_id}).status_code == 403
    assert Device.objects.get(pk=paired.device_id).status == DeviceStatus.ACTIVE


def test_a_device_of_another_citizen_cannot_be_removed_from_this_page(paired, key, staff_client, make_citizen):
    other = make_citizen(phone="+351913333333", email="outro@example.pt")
    clerk = staff_client("clerk")
    response = clerk.post(f"/counter/citizen/{other.citizen.pk}/app/", {**_presented(other), "device": paired.device_id})
    assert response.status_code == 404
    assert Device.objects.get(pk=paired.device_id).status == DeviceStatus.ACTIVE


def test_the_signing_code_goes_to_the_app_with_the_documents_names(signing_pki, paired, key, run_worker):
    from chave.signing import services as signing

    credential = signing.activate_signing(key, "5820", by="test").credential
    started = signing.start_request(credential, via="area", documents=["contrato.pdf", "anexo.pdf"], pin="5820")
    assert started.ok
    run_worker()
    codes = [c for c in paired.inbox()["codes"] if c["purpose"] == "signing"]
    assert len(codes) == 1
    assert codes[0]["documents"] == "«contrato.pdf», «anexo.pdf»" and codes[0]["portal"] == "Chave"
    assert not DevOutboxMessage.objects.filter(body__contains=codes[0]["code"]).exists()  # not by SMS
    authorised = signing.authorise(started.request, code=codes[0]["code"])
    assert authorised.ok
