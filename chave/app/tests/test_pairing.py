"""Pairing the Chave app, and its devices in the personal area, as a citizen, the app and an
attacker see them: the code works once and for 10 minutes, the pairing is confirmed by SMS, at
most 3 devices, every contact told, the history names the device; rename and remove; a removed
device's calls are refused; cancelling, blocking or a new mobile number removes the devices."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.test import Client

from chave.app.models import Device, DeviceStatus, Pairing
from chave.audit.models import AuditEvent
from chave.delivery.messages import notice_message
from chave.delivery.models import DevOutboxMessage
from chave.identity import services as identity
from chave.login.tests.pages import body, says
from chave.portal.tests.helpers import enter_with_card
from chave.testing.device import ApiRefused

from .conftest import EMAIL, PHONE, PIN
from .helpers import add_device, pairing_code

pytestmark = pytest.mark.django_db(transaction=True)


def notices(outbox, to: str, event: str) -> int:
    outbox.last(to)  # runs the worker
    return DevOutboxMessage.objects.filter(to=to, body=notice_message(event, language="pt-pt").body).count()


def test_pairing_from_the_personal_area_to_an_active_device(area, outbox, new_device, key):
    page = body(area.get("/area/app/"))
    assert 'id="no-devices"' in page and 'id="add-app"' in page
    response = area.post("/area/app/add/")
    page = body(response)
    assert 'id="pairing-qr"' in page and 'src="data:image/svg+xml' in page  # made here, no script
    code = pairing_code(area)  # a second press: the first code stops working
    device = new_device()
    answer = device.pair(code, name="Telemóvel da Maria")
    assert answer.status == 201 and answer["status"] == "pending"
    assert answer["confirmation_sent_to"] == "+351••••••678"
    # Not usable before the SMS code is typed in the app.
    with pytest.raises(ApiRefused) as refused:
        device.inbox()
    assert refused.value.status == 403 and refused.value.error == "device_pending"
    sms = outbox.last(PHONE)
    assert "Chave" in sms.body and says("to add the Chave app to your Digital Mobile Key", "en") in sms.body  # the app speaks English
    confirmed = device.confirm(outbox.last_code(PHONE))
    assert confirmed["status"] == "active" and confirmed["offline"]["algorithm"] == "SHA256"
    assert len(device.offline_secret) == 32
    # Told on every contact, listed in the area, in the history with the device's name.
    assert notices(outbox, PHONE, "app_paired") == 1 and notices(outbox, EMAIL, "app_paired") == 1
    page = body(area.get("/area/app/"))
    assert "Telemóvel da Maria" in page and 'id="no-devices"' not in page
    assert AuditEvent.objects.filter(event="app.paired", citizen=key.citizen,
                                     detail__device_name="Telemóvel da Maria").exists()
    history = body(area.get("/area/history/"))
    assert "Telemóvel da Maria" in history
    # The secret is sealed at rest.
    stored = Device.objects.get(pk=device.device_id)
    assert device.offline_secret.hex() not in stored.offline_secret_sealed


def test_a_pairing_code_works_once_and_for_ten_minutes_only(area, outbox, new_device, clock):
    code = pairing_code(area)
    new_device().pair(code)
    with pytest.raises(ApiRefused) as refused:
        new_device().pair(code)
    assert refused.value.status == 400 and refused.value.error == "invalid_pairing_code"
    late = pairing_code(area)
    clock.travel(dt.timedelta(minutes=10, seconds=1))
    with pytest.raises(ApiRefused) as refused:
        new_device().pair(late)
    assert refused.value.error == "invalid_pairing_code"
    # Unknown, used and expired codes get the same words.
    with pytest.raises(ApiRefused) as unknown:
        new_device().pair("ABCD2345")
    assert unknown.value.answer.data == refused.value.answer.data


def test_pairing_needs_a_level_3_sign_in_and_a_mobile_number(make_citizen, outbox, client):
    from chave.portal.tests.helpers import client_in, enter_with_key

    key = make_citizen(phone=PHONE, email=EMAIL)
    by_email = client_in("en")
    enter_with_key(by_email, outbox, channel="email")
    page = body(by_email.get("/area/app/"))
    assert 'id="cannot-add"' in page and 'id="add-app"' not in page
    assert by_email.post("/area/app/add/").status_code == 302
    assert not Pairing.objects.filter(key=key).exists()
    # With the card (level 4) a key without a mobile number still cannot: the pairing is confirmed by SMS.
    other = make_citizen(phone=None, email="joao@example.pt")
    card = client_in("en")
    enter_with_card(card, other)
    assert says("Adding the app needs a mobile number on your key: the pairing is confirmed by SMS.") in body(
        card.get("/area/app/"))


def test_at_most_three_devices(area, outbox, new_device, key):
    for n in range(3):
        add_device(area, outbox, new_device(), name=f"Device {n}")
    page = body(area.get("/area/app/"))
    assert 'id="cannot-add"' in page
    # A code made before the third device was added cannot make a fourth either.
    assert Device.objects.filter(key=key, status=DeviceStatus.ACTIVE).count() == 3


def test_a_fourth_device_is_refused_at_confirmation(area, outbox, new_device, key):
    devices = [new_device() for _ in range(4)]
    for device in devices:  # four waiting at once, each sent its own code, in this order
        device.pair(pairing_code(area))
    outbox.last(PHONE)
    codes = [re.search(r"#(\d{6})\s*$", m.body).group(1)
             for m in DevOutboxMessage.objects.filter(to=PHONE).order_by("sent_at", "id") if "#" in m.body]
    codes = codes[-4:]  # the first was the sign-in's
    for device, code in zip(devices[:3], codes):
        device.confirm(code)
    with pytest.raises(ApiRefused) as refused:
        devices[3].confirm(codes[3])
    assert refused.value.status == 403 and refused.value.error == "too_many"
    assert Device.objects.filter(key=key, status=DeviceStatus.ACTIVE).count() == 3
    assert Device.objects.get(pk=devices[3].device_id).status == DeviceStatus.REMOVED


def test_wrong_confirmation_codes_count_like_any_code(area, outbox, new_device):
    device = new_device()
    device.pair(pairing_code(area))
    right = outbox.last_code(PHONE)
    wrong = "000000" if right != "000000" else "111111"
    for left in (2, 1):
        with pytest.raises(ApiRefused) as refused:
            device.confirm(wrong)
        assert refused.value.error == "wrong" and str(left) in refused.value.answer["message"]
    with pytest.raises(ApiRefused) as refused:
        device.confirm(wrong)
    assert refused.value.error == "spent"
    with pytest.raises(ApiRefused):
        device.confirm(right)  # spent: a new code is needed
    assert Device.objects.get(pk=device.device_id).status == DeviceStatus.PENDING


def test_rename_and_remove_in_the_personal_area(area, outbox, paired, key):
    device_id = paired.device_id
    response = area.post(f"/area/app/{device_id}/rename/", {"name": " "})
    assert response.status_code == 400
    response = area.post(f"/area/app/{device_id}/rename/", {"name": "O meu telemóvel"})
    assert response.status_code == 302
    assert paired.info()["name"] == "O meu telemóvel"
    assert "O meu telemóvel" in body(area.get(f"/area/app/{device_id}/remove/"))
    response = area.post(f"/area/app/{device_id}/remove/")
    assert response.status_code == 302
    with pytest.raises(ApiRefused) as refused:
        paired.inbox()
    assert refused.value.status == 403 and refused.value.error == "device_removed"
    assert notices(outbox, PHONE, "app_removed") == 1 and notices(outbox, EMAIL, "app_removed") == 1
    assert AuditEvent.objects.filter(event="app.removed", citizen=key.citizen, detail__by="citizen").exists()
    # Another citizen's device is not found from this area.
    assert area.get(f"/area/app/{device_id}/remove/").status_code == 404


def test_another_citizens_device_cannot_be_touched(area, outbox, new_device, make_citizen):
    from chave.portal.tests.helpers import client_in, enter_with_key

    device = add_device(area, outbox, new_device())
    make_citizen(phone="+351913333333", email="outro@example.pt")
    other = client_in("en")
    enter_with_key(other, outbox, identifier="+351913333333")
    assert other.get(f"/area/app/{device.device_id}/remove/").status_code == 404
    assert other.post(f"/area/app/{device.device_id}/remove/").status_code == 404
    assert device.info()["status"] == "active"


@pytest.mark.parametrize("how", ["cancel", "block", "new_mobile"])
def test_cancelling_blocking_or_a_new_mobile_removes_the_devices(how, area, outbox, paired, key):
    if how == "cancel":
        identity.cancel_key(key, by="test")
    elif how == "block":
        identity.block_key(key, by="test")
    else:
        from chave.identity import contacts

        started = contacts.request_verification(key, "mobile", "+351914444444", language="en")
        outbox.last("+351914444444")
        assert contacts.confirm(key, "mobile", "+351914444444", transaction_id=started.transaction,
                                code=outbox.last_code("+351914444444")).ok
    with pytest.raises(ApiRefused) as refused:
        paired.inbox()
    assert refused.value.error == "device_removed"
    expected = {"cancel": "key_cancelled", "block": "key_blocked", "new_mobile": "mobile_changed"}[how]
    assert Device.objects.get(pk=paired.device_id).removed_by == expected


def test_six_wrong_pins_block_the_key_and_remove_its_devices(paired, key):
    for _ in range(6):
        identity.check_login_pin(key, "0000" if PIN != "0000" else "1111")
        key.refresh_from_db()
        key.locked_until = None
        if key.status == "locked":
            key.status = "active"
        key.save()
    assert Device.objects.get(pk=paired.device_id).removed_by == "key_blocked"


def test_the_app_removes_itself(paired, key):
    paired.unpair()
    assert Device.objects.get(pk=paired.device_id).removed_by == "app"
    with pytest.raises(ApiRefused):
        paired.info()


def test_settings_lifetime_name_and_bad_values(paired):
    assert paired.settings(offline_period=120)["offline_period"] == 120
    for bad in (45, "60", True, None, [], 10**30):
        with pytest.raises(ApiRefused) as refused:
            paired.settings(offline_period=bad)
        assert refused.value.status == 400
    with pytest.raises(ApiRefused):
        paired.settings(name="x" * 500)
    with pytest.raises(ApiRefused):
        paired.settings(colour="blue")
    assert paired.info()["offline_period"] == 120


def test_a_key_pairs_one_device_once(area, outbox, new_device, paired):
    copy = new_device()
    copy.private_key = paired.private_key
    with pytest.raises(ApiRefused) as refused:
        copy.pair(pairing_code(area))
    assert refused.value.status == 409


def test_pairing_codes_are_throttled_per_address(area, new_device, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_pairing_per_ip": (3, 900)}}
    device = new_device()
    for _ in range(3):
        with pytest.raises(ApiRefused) as refused:
            device.pair("ZZZZ2222")
        assert refused.value.status == 400
    with pytest.raises(ApiRefused) as refused:
        device.pair(pairing_code(area))  # even a good code, from this address
    assert refused.value.status == 429 and "retry-after" in refused.value.answer.headers


def test_no_code_or_secret_in_the_database_or_the_audit(paired, key, outbox):
    from django.db import connection

    secret_hex = paired.offline_secret.hex()
    code = paired.offline_code()
    with connection.cursor() as cursor:
        for table in ("app_device", "app_pairing", "audit_auditevent", "app_inboxitem"):
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 - fixed names
            dump = repr(cursor.fetchall())
            assert secret_hex not in dump and paired.sign(b"x")[:10] not in dump
            assert code not in dump or table == "app_device"  # digits may occur in uuids; checked below
    assert code not in repr(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_a_client_without_a_session_cannot_add(client, key):
    response = Client().post("/area/app/add/")
    assert response.status_code == 302 and response["Location"].startswith("/area/enter/")


def test_housekeeping_forgets_what_can_no_longer_be_used(area, outbox, new_device, paired, key, clock):
    from chave.app import services
    from chave.identity.models import KeyStatus

    pending = new_device()
    pending.pair(pairing_code(area))
    clock.travel(dt.timedelta(days=2))
    done = services.housekeeping()
    assert done["pending_devices"] == 1 and Device.objects.get(pk=pending.device_id).removed_by == "not_confirmed"
    assert done["nonces"] > 0
    key.refresh_from_db()
    key.transition(KeyStatus.EXPIRED, at=clock.now())
    key.save()
    assert services.housekeeping()["devices_of_ended_keys"] == 1
    assert Device.objects.get(pk=paired.device_id).removed_by == "key_expired"


def test_make_run_tells_how_to_open_the_app_on_the_demo_phone(settings):
    import io

    from django.core.management.base import OutputWrapper

    from chave.public.management.commands.seed_demo import Command

    command = Command()
    out = io.StringIO()
    command.stdout = OutputWrapper(out)
    command.print_app()  # what `make run` prints after the demo citizen's credentials (seed_demo)
    text = out.getvalue()
    assert f"{settings.CHAVE_PUBLIC_URL}/app/" in text and "adb reverse" in text and "/area/app/" in text
