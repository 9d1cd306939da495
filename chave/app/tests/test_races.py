"""Races (SQLite and PostgreSQL, real threads, each with its own connection): 50 parallel
approvals of one request give one login; an offline code submitted twice at once signs in once;
a QR sign-in approved once is completed once."""

from __future__ import annotations

import pytest
from django.test import Client

from chave.app.models import SignInRequest
from chave.audit.models import AuditEvent
from chave.login.tests.pages import client_in
from chave.testing.device import Device, DjangoTransport
from chave.throttle.tests.parallel import run_together

from .conftest import PHONE, PIN
from .test_login_by_app import _qr_page, _waiting, choose, past_the_pin

pytestmark = pytest.mark.django_db(transaction=True)


def _same_device(device: Device, i: int) -> Device:
    """The device, calling from a thread of its own (a test client is not shared between threads)."""
    twin = Device(DjangoTransport(Client(), REMOTE_ADDR=f"192.0.2.{100 + i % 100}"), private_key=device.private_key)
    twin.device_id, twin.clock_offset = device.device_id, device.clock_offset
    return twin


def _same_browser(browser: Client) -> Client:
    twin = Client()
    twin.cookies = browser.cookies
    return twin


def test_50_parallel_approvals_of_one_request_give_one_login(paired, key, settings):
    # The race, not the throttle (30 answers per key per 15 minutes) is under test here.
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_approval_per_key": (100, 900)}}
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    answers = run_together(50, lambda i: _same_device(paired, i).call(
        "POST", f"/app/api/approvals/{waiting['id']}", {"answer": "number", "number": number}, check=False))
    assert sorted(a.status for a in answers) == [200] + [409] * 49
    # The login page, refreshed 50 times at once (tabs, the meta refresh and the button), signs in once.
    pages = run_together(50, lambda i: _same_browser(browser).get("/login/approve/"))
    assert all(p.status_code in (200, 302) for p in pages)
    assert [p.get("Location") for p in pages].count("/login/done/") == 1
    assert AuditEvent.objects.filter(event="login", citizen=key.citizen, channel="app_approve").count() == 1
    assert SignInRequest.objects.get(pk=waiting["id"]).status == "completed"


def test_right_and_wrong_numbers_racing_decide_once(paired, key):
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    wrong = next(n for n in waiting["numbers"] if n != number)
    answers = run_together(30, lambda i: _same_device(paired, i).call(
        "POST", f"/app/api/approvals/{waiting['id']}", {"answer": "number", "number": number if i % 2 else wrong},
        check=False))
    assert [a.status for a in answers].count(200) == 1
    final = SignInRequest.objects.get(pk=waiting["id"]).status
    assert final in ("approved", "refused")
    browser.get("/login/approve/")
    signed = browser.session.get("chave.signed_in") is not None
    assert signed == (final == "approved")


def test_an_offline_code_submitted_twice_at_once_signs_in_once(paired, key, clock):
    browsers = [past_the_pin(), past_the_pin()]
    for browser in browsers:
        choose(browser, "app_offline")
    code = paired.offline_code(at=clock.now().timestamp())
    answers = run_together(2, lambda i: _same_browser(browsers[i]).post("/login/code/", {"code": code}))
    assert sorted(a.status_code for a in answers) == [302, 400]
    assert AuditEvent.objects.filter(event="login", citizen=key.citizen, channel="app_offline").count() == 1


def test_one_offline_code_from_one_browser_twenty_times_at_once(paired, key, clock):
    browser = past_the_pin()
    choose(browser, "app_offline")
    code = paired.offline_code(at=clock.now().timestamp())
    answers = run_together(20, lambda i: _same_browser(browser).post("/login/code/", {"code": code}))
    assert [a.get("Location") for a in answers].count("/login/done/") == 1
    assert all(a.status_code < 500 for a in answers)
    assert AuditEvent.objects.filter(event="login", citizen=key.citizen, channel="app_offline").count() == 1


def test_a_qr_sign_in_is_claimed_by_one_device_and_completed_once(paired, key):
    computer = client_in("en")
    typed = _qr_page(computer)
    scans = run_together(20, lambda i: _same_device(paired, i).call("POST", "/app/api/qr", {"code": typed},
                                                                    check=False))
    assert sorted(a.status for a in scans).count(200) == 1
    request_id = next(a.data["id"] for a in scans if a.status == 200)
    pins = run_together(10, lambda i: _same_device(paired, i).call("POST", f"/app/api/qr/{request_id}", {"pin": PIN},
                                                                   check=False))
    assert [a.status for a in pins].count(200) == 1
    pages = run_together(20, lambda i: _same_browser(computer).get("/login/app/"))
    assert [p.get("Location") for p in pages].count("/login/done/") == 1
    assert AuditEvent.objects.filter(event="login", citizen=key.citizen, channel="app_qr").count() == 1
    assert PHONE  # the key's
