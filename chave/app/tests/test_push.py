"""Codes by Web Push, against the local push service of ``chave/testing`` (RFC 8030 push
resource, RFC 8291 payload decrypted with the subscription's keys, RFC 8292 VAPID checked): the
code arrives encrypted and matches the inbox; a push service that is down is tried again; one
that forgot the subscription is no longer used; an endpoint not on the allowed list is refused
at pairing, so Chave never posts to an address a device chose."""

from __future__ import annotations

import pytest

from chave.app import push
from chave.app.models import Device
from chave.delivery.models import OutboundMessage
from chave.testing.device import ApiRefused
from chave.testing.pushservice import PushService

from .helpers import add_device, pairing_code
from .test_login_by_app import choose, past_the_pin

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(scope="module")
def push_service():
    with PushService() as service:
        yield service


@pytest.fixture
def allowed(settings, push_service):
    settings.CHAVE_APP_PUSH_SERVICES = [*settings.CHAVE_APP_PUSH_SERVICES, push_service.origin]
    return push_service


@pytest.fixture
def subscribed(area, outbox, new_device, allowed):
    subscription = allowed.subscribe(push.vapid_public_key())
    device = add_device(area, outbox, new_device(), name="Telemóvel da Maria", push=subscription)
    device.subscription = subscription
    return device


def test_a_login_code_is_pushed_encrypted_and_matches_the_inbox(subscribed, allowed, run_worker):
    browser = past_the_pin()
    choose(browser, f"app:{subscribed.device_id}")
    run_worker()
    received = allowed.messages(subscribed.subscription)
    assert len(received) == 1
    message = received[0]
    data = message.json
    assert data["type"] == "code" and data["portal"] == "Chave" and data["purpose"] == "login"
    assert data["code"] == subscribed.inbox()["codes"][0]["code"]
    assert message.urgency == "high" and 0 < message.ttl <= 300
    assert message.vapid_key == push.vapid_public_key() and message.vapid_claims["sub"].startswith("mailto:")
    assert browser.post("/login/code/", {"code": data["code"]})["Location"] == "/login/done/"


def test_an_approval_request_wakes_the_app_without_a_secret(subscribed, allowed, run_worker):
    browser = past_the_pin()
    choose(browser, "app_approve")
    run_worker()
    data = allowed.messages(subscribed.subscription)[-1].json
    assert data["type"] == "approval" and data["portal"] == "Chave"
    assert "number" not in data and "numbers" not in data  # the numbers are read from Chave, signed


def test_a_push_service_that_is_down_is_tried_again(subscribed, allowed, run_worker, clock):
    import datetime as dt

    allowed.fail_next(1, 503)
    browser = past_the_pin()
    choose(browser, f"app:{subscribed.device_id}")
    run_worker()
    message = OutboundMessage.objects.filter(channel="app").latest("created_at")
    assert message.status == "queued" and message.attempts == 1
    assert subscribed.inbox()["codes"]  # the app can already read it
    clock.travel(dt.timedelta(seconds=6))
    # The worker reads real time for run_after: make the deferred retry due now (as
    # chave/delivery/tests/test_delivery.py does) rather than sleep.
    from django.utils import timezone
    from django_tasks_db.models import DBTaskResult

    DBTaskResult.objects.filter(status="READY").update(run_after=timezone.now() - dt.timedelta(seconds=1))
    run_worker()
    message.refresh_from_db()
    assert message.status == "sent"
    assert len(allowed.messages(subscribed.subscription)) == 1
    assert len(subscribed.inbox()["codes"]) == 1  # kept once


def test_a_subscription_the_push_service_forgot_is_dropped(subscribed, allowed, run_worker):
    allowed.expire(subscribed.subscription)
    browser = past_the_pin()
    choose(browser, f"app:{subscribed.device_id}")
    run_worker()
    assert Device.objects.get(pk=subscribed.device_id).push_endpoint == ""
    assert subscribed.inbox()["codes"]  # polling still brings it
    assert subscribed.info()["push"] is False


def test_an_endpoint_on_another_host_is_refused(area, new_device, push_service):
    subscription = push_service.subscribe()  # its origin is not allowed in these settings
    with pytest.raises(ApiRefused) as refused:
        new_device().pair(pairing_code(area), push_subscription=subscription)
    assert refused.value.status == 400 and refused.value.error == "push_service_not_allowed"
    bad = {"endpoint": "https://169.254.169.254/latest", "keys": subscription["keys"]}
    with pytest.raises(ApiRefused):
        new_device().pair(pairing_code(area), push_subscription=bad)


def test_the_app_can_change_or_drop_its_subscription(subscribed, allowed):
    assert subscribed.settings(push_subscription=None)["push"] is False
    again = allowed.subscribe(push.vapid_public_key())
    assert subscribed.settings(push_subscription=again)["push"] is True
    for bad in ({"endpoint": again["endpoint"]}, {"endpoint": again["endpoint"], "keys": {"p256dh": "x", "auth": "y"}},
                "https://x", []):
        with pytest.raises(ApiRefused):
            subscribed.settings(push_subscription=bad)


def test_a_removed_device_gets_no_push(subscribed, allowed, area, run_worker):
    area.post(f"/area/app/{subscribed.device_id}/remove/")
    before = len(allowed.messages(subscribed.subscription))
    browser = past_the_pin()
    choose(browser, "sms")
    run_worker()
    assert len(allowed.messages(subscribed.subscription)) == before


def test_the_development_vapid_key_is_made_once_whoever_asks_first(tmp_path):
    """Threads (and processes) of a fresh development service asking at once all sign with the
    key on disk: a subscription made through any of them stays good for every push."""
    import threading

    from cryptography.hazmat.primitives import serialization

    def public(key) -> bytes:
        return key.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)

    barrier, keys = threading.Barrier(8), []

    def ask():
        barrier.wait()
        keys.append(push._vapid_key("", str(tmp_path)))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    on_disk = serialization.load_pem_private_key((tmp_path / "app" / "vapid.pem").read_bytes(), password=None)
    assert {public(key) for key in keys} == {public(on_disk)}

    push._make_dev_vapid_key(tmp_path / "app" / "vapid.pem")  # another process, a moment late
    again = serialization.load_pem_private_key((tmp_path / "app" / "vapid.pem").read_bytes(), password=None)
    assert public(again) == public(on_disk)
    assert [p.name for p in (tmp_path / "app").iterdir()] == ["vapid.pem"]  # no draft left behind
    push._vapid_key.cache_clear()
