"""Signing in with the Chave app, through the real login pages and the app API: a code pushed to
the app, an offline code, an approval by number matching, and QR sign-in; with the attacks each
must resist (a wrong number, "this wasn't me", a replayed or stale code, a removed device)."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest

from chave.app.models import SignInRequest
from chave.audit.models import AuditEvent
from chave.delivery.messages import notice_message
from chave.delivery.models import DevOutboxMessage
from chave.identity.models import Key, KeyStatus
from chave.login.tests.pages import body, client_in, says
from chave.testing.device import ApiRefused

from .conftest import EMAIL, PHONE, PIN

pytestmark = pytest.mark.django_db(transaction=True)


def past_the_pin(lang: str = "en"):
    browser = client_in(lang)
    response = browser.post("/login/", {"identifier": PHONE, "pin": PIN})
    assert response.status_code == 302 and response["Location"] == "/login/channel/", response
    return browser


def choose(browser, channel: str):
    return browser.post("/login/channel/", {"channel": channel})


def signed_in_as(browser) -> dict:
    return browser.session.get("chave.signed_in")


# --- The channel page ---------------------------------------------------------------------------


def test_the_app_is_offered_beside_sms_and_email(paired):
    page = body(past_the_pin().get("/login/channel/"))
    for words in ("Approve in the Chave app (you match a number)",
                  "Type a code the Chave app makes (works without network)"):
        assert says(words) in page
    assert says("A code in the Chave app on “%s”").replace("%s", "Telemóvel da Maria") in page
    assert f'value="app:{paired.device_id}"' in page and 'value="sms"' in page


def test_without_a_device_nothing_of_the_app_is_offered(key):
    browser = client_in("en")
    response = browser.post("/login/", {"identifier": PHONE, "pin": PIN})
    page = body(browser.get(response["Location"]))
    assert "app_approve" not in page and "app_offline" not in page
    assert choose(browser, "app_offline").status_code == 400


# --- A code by the app ---------------------------------------------------------------------------


def test_a_code_pushed_to_the_app_signs_in_at_level_3_naming_the_device(paired, run_worker, key):
    browser = past_the_pin()
    response = choose(browser, f"app:{paired.device_id}")
    assert response.status_code == 302 and response["Location"] == "/login/code/"
    page = body(browser.get("/login/code/"))
    assert "Telemóvel da Maria" in page
    run_worker()
    codes = paired.inbox()["codes"]
    assert len(codes) == 1 and codes[0]["portal"] == "Chave" and codes[0]["purpose"] == "login"
    assert re.fullmatch(r"\d{6}", codes[0]["code"])
    assert not DevOutboxMessage.objects.filter(to=PHONE, body__contains=codes[0]["code"]).exists()
    response = browser.post("/login/code/", {"code": codes[0]["code"]})
    assert response.status_code == 302 and response["Location"] == "/login/done/"
    who = signed_in_as(browser)
    assert who["method"] == "app" and who["assurance_level"] == 3
    event = AuditEvent.objects.filter(event="login", citizen=key.citizen).latest("id")
    assert event.channel == "app" and event.detail["device_name"] == "Telemóvel da Maria"
    # Once used, the code is refused.
    again = past_the_pin()
    choose(again, f"app:{paired.device_id}")
    assert again.post("/login/code/", {"code": codes[0]["code"]}).status_code == 400


def test_app_codes_keep_every_code_rule(paired, run_worker, clock, settings):
    browser = past_the_pin()
    choose(browser, f"app:{paired.device_id}")
    run_worker()
    first = paired.inbox()["codes"][0]["code"]
    # Resend cooldown, then only the latest code works.
    assert says("Please wait: you can ask for a new code %(wait)s.").split("%")[0] in body(
        browser.post("/login/code/resend/", follow=True))
    clock.travel(dt.timedelta(seconds=31))
    browser.post("/login/code/resend/")
    run_worker()
    latest = paired.inbox()["codes"][0]["code"]
    if latest != first:
        assert browser.post("/login/code/", {"code": first}).status_code == 400
    # Three wrong entries spend it.
    wrong = "000000" if latest != "000000" else "111111"
    for _ in range(3):
        browser.post("/login/code/", {"code": wrong})
    assert browser.post("/login/code/", {"code": latest}).status_code == 400


def test_app_codes_count_against_the_send_caps_per_device(paired, run_worker, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "code_send_per_destination": (3, 3600)}}
    for _ in range(3):
        browser = past_the_pin()
        assert choose(browser, f"app:{paired.device_id}")["Location"] == "/login/code/"
    browser = past_the_pin()
    response = choose(browser, f"app:{paired.device_id}")
    assert response["Location"] == "/login/channel/"  # refused, another way may be chosen
    # The phone had two SMS (the sign-in to the area, the pairing's code): a third may go.
    assert choose(browser, "sms")["Location"] == "/login/code/"


def test_a_removed_device_gets_no_code_and_is_not_offered(paired, area, run_worker):
    area.post(f"/area/app/{paired.device_id}/remove/")
    browser = past_the_pin()
    page = body(browser.get("/login/channel/"))
    assert f"app:{paired.device_id}" not in page
    assert choose(browser, f"app:{paired.device_id}").status_code == 400


# --- Offline codes -------------------------------------------------------------------------------


def test_an_offline_code_signs_in_once(paired, key, clock):
    browser = past_the_pin()
    assert choose(browser, "app_offline")["Location"] == "/login/code/"
    page = body(browser.get("/login/code/"))
    assert says("Open the Chave app and type the %(digits)s-digit code it shows. It works without network.")[:20] in page
    code = paired.offline_code(at=clock.now().timestamp())
    response = browser.post("/login/code/", {"code": code})
    assert response.status_code == 302 and response["Location"] == "/login/done/"
    assert signed_in_as(browser)["method"] == "app_offline"
    assert AuditEvent.objects.filter(event="login", channel="app_offline",
                                     detail__device_name="Telemóvel da Maria").exists()
    # The same code again, in another login: a replay.
    other = past_the_pin()
    choose(other, "app_offline")
    response = other.post("/login/code/", {"code": code})
    assert response.status_code == 400 and says("This code was already used. Ask for a new code.") in body(response)


@pytest.mark.parametrize("period", [30, 60, 120, 300])
def test_offline_codes_last_the_lifetime_the_citizen_chose_with_one_step_of_drift(paired, clock, period):
    paired.settings(offline_period=period)
    start = clock.now().timestamp()
    step_start = start - start % period
    code = paired.offline_code(at=step_start)
    clock.travel(dt.timedelta(seconds=step_start + 2 * period - 1 - start))  # one step later: still good
    browser = past_the_pin()
    choose(browser, "app_offline")
    assert browser.post("/login/code/", {"code": code}).status_code == 302
    late = paired.offline_code(at=clock.now().timestamp() - 2 * period)  # two steps old
    browser = past_the_pin()
    choose(browser, "app_offline")
    assert browser.post("/login/code/", {"code": late}).status_code == 400


def test_three_wrong_offline_codes_end_that_login(paired, clock):
    browser = past_the_pin()
    choose(browser, "app_offline")
    right = paired.offline_code(at=clock.now().timestamp())
    wrong = str((int(right) + 1) % 10**6).zfill(6)
    for left in (2, 1):
        response = browser.post("/login/code/", {"code": wrong})
        times = "time" if left == 1 else "times"
        assert f"The code is not correct. You can try {left} more {times}." in body(response)
    browser.post("/login/code/", {"code": wrong})
    response = browser.post("/login/code/", {"code": right})
    assert response.status_code == 400 and "/login/done/" not in response.get("Location", "")


def test_offline_codes_are_limited_per_key(paired, clock, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_offline_code_per_key": (2, 3600)}}
    right = paired.offline_code(at=clock.now().timestamp())
    wrong = str((int(right) + 1) % 10**6).zfill(6)
    for _ in range(2):
        browser = past_the_pin()
        choose(browser, "app_offline")
        browser.post("/login/code/", {"code": wrong})
    browser = past_the_pin()
    choose(browser, "app_offline")
    response = browser.post("/login/code/", {"code": right})
    assert response.status_code == 400
    assert says("Too many codes were typed for this key recently. Please try again later.") in body(response)


# --- Approval by number matching ------------------------------------------------------------------


def _waiting(browser, device):
    assert choose(browser, "app_approve")["Location"] == "/login/approve/"
    page = body(browser.get("/login/approve/"))
    number = int(re.search(r'id="match-number"[^>]*>(\d+)<', page).group(1))
    assert '<meta http-equiv="refresh"' in page and "<script" not in page
    approvals = device.inbox()["approvals"]
    assert len(approvals) == 1 and number in approvals[0]["numbers"] and len(approvals[0]["numbers"]) == 3
    return number, approvals[0]


def test_approving_with_the_right_number_signs_in(paired, key):
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    assert waiting["portal"] == "Chave"
    assert paired.approve(waiting["id"], number)["result"] == "approved"
    response = browser.get("/login/approve/")  # the meta refresh
    assert response.status_code == 302 and response["Location"] == "/login/done/"
    who = signed_in_as(browser)
    assert who["method"] == "app_approve" and who["assurance_level"] == 3
    assert AuditEvent.objects.filter(event="login", channel="app_approve",
                                     detail__device_name="Telemóvel da Maria").exists()
    with pytest.raises(ApiRefused) as refused:
        paired.approve(waiting["id"], number)
    assert refused.value.status == 409


def test_a_wrong_number_refuses_that_login(paired):
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    wrong = next(n for n in waiting["numbers"] if n != number)
    assert paired.approve(waiting["id"], wrong)["result"] == "refused"
    response = browser.get("/login/approve/")
    assert response.status_code == 400 and 'id="approval-refused"' in body(response)
    # That login is over: the PIN step again.
    assert browser.get("/login/approve/").status_code == 302
    assert browser.post("/login/channel/", {"channel": "sms"})["Location"] == "/login/"


def test_this_wasnt_me_refuses_locks_the_key_and_tells_the_citizen(paired, key, outbox):
    browser = past_the_pin()
    _number, waiting = _waiting(browser, paired)
    assert paired.not_me(waiting["id"])["result"] == "reported"
    response = browser.get("/login/approve/")
    assert response.status_code == 400 and 'data-reason="reported"' in body(response)
    key.refresh_from_db()
    assert key.status == KeyStatus.LOCKED and key.locked_until > key.status_changed_at
    outbox.last(PHONE)
    for to in (PHONE, EMAIL):
        assert any("Chave app" in m.body and "locked" in m.body.lower() or "bloque" in m.body.lower()
                   for m in DevOutboxMessage.objects.filter(to=to))
    # Whoever has the PIN cannot start again now.
    again = client_in("en").post("/login/", {"identifier": PHONE, "pin": PIN})
    assert again.status_code == 400


def test_an_unanswered_approval_expires(paired, clock):
    browser = past_the_pin()
    _waiting(browser, paired)
    clock.travel(dt.timedelta(minutes=2, seconds=1))
    response = browser.get("/login/approve/")
    assert 'data-reason="expired"' in body(response)
    assert paired.inbox()["approvals"] == []
    # Another way still works for this login.
    assert choose(browser, "sms")["Location"] == "/login/code/"


def test_approvals_of_another_key_are_invisible_and_unanswerable(paired, make_citizen, new_device, outbox):
    from chave.portal.tests.helpers import client_in as area_client
    from chave.portal.tests.helpers import enter_with_key

    from .helpers import add_device

    make_citizen(phone="+351913333333", email="outro@example.pt")
    other_area = area_client("en")
    enter_with_key(other_area, outbox, identifier="+351913333333")
    other = add_device(other_area, outbox, new_device(), phone="+351913333333")
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    assert other.inbox()["approvals"] == []
    with pytest.raises(ApiRefused) as refused:
        other.approve(waiting["id"], number)
    assert refused.value.status == 404


def test_a_removed_device_cannot_approve(paired, area):
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    area.post(f"/area/app/{paired.device_id}/remove/")
    with pytest.raises(ApiRefused) as refused:
        paired.approve(waiting["id"], number)
    assert refused.value.error == "device_removed"
    assert SignInRequest.objects.get(pk=waiting["id"]).status == "pending"


# --- QR sign-in -----------------------------------------------------------------------------------


def _qr_page(computer):
    page = body(computer.get("/login/app/"))
    typed = re.search(r'id="sign-in-code">([A-Z]{4}-\d{4})<', page).group(1)
    assert 'id="sign-in-qr"' in page and re.search(r'<meta http-equiv="refresh" content="[123]">', page)
    return typed


def test_qr_sign_in_with_the_short_code_and_the_pin(paired, key):
    computer = client_in("en")
    typed = _qr_page(computer)
    scanned = paired.scan(typed)
    assert scanned["portal"] == "Chave"
    page = body(computer.get("/login/app/"))
    assert 'id="qr-scanned"' in page and "Telemóvel da Maria" in page
    assert paired.qr_pin(scanned["id"], PIN)["result"] == "approved"
    response = computer.get("/login/app/")
    assert response.status_code == 302 and response["Location"] == "/login/done/"
    who = signed_in_as(computer)
    assert who["method"] == "app_qr" and who["assurance_level"] == 3 and who["key_id"] == key.pk
    assert AuditEvent.objects.filter(event="login", channel="app_qr", detail__device_name="Telemóvel da Maria").exists()


def test_a_qr_code_read_after_it_changed_is_refused(paired, clock):
    from chave.app import services

    computer = client_in("en")
    _qr_page(computer)
    request = SignInRequest.objects.get(kind="qr")
    shown = services.qr_codes(request).link
    clock.travel(dt.timedelta(seconds=services.policy.get("app_qr_step_seconds") + 3))
    with pytest.raises(ApiRefused) as refused:
        paired.scan(shown)
    assert refused.value.status == 410 and refused.value.error == "qr_expired"
    assert paired.scan(services.qr_codes(request).link)["id"] == str(request.pk)  # the one shown now works


def test_a_wrong_pin_in_the_app_counts_like_a_login(paired, key):
    computer = client_in("en")
    scanned = paired.scan(_qr_page(computer))
    wrong = "0000" if PIN != "0000" else "1111"
    for _ in range(2):
        with pytest.raises(ApiRefused) as refused:
            paired.qr_pin(scanned["id"], wrong)
        assert refused.value.status == 403 and refused.value.error == "wrong_pin"
    with pytest.raises(ApiRefused):
        paired.qr_pin(scanned["id"], wrong)
    assert Key.objects.get(pk=key.pk).status == KeyStatus.LOCKED
    with pytest.raises(ApiRefused):
        paired.qr_pin(scanned["id"], PIN)  # refused with the lock
    assert signed_in_as(computer) is None


def test_only_the_computer_that_showed_the_code_is_signed_in(paired):
    computer, bystander = client_in("en"), client_in("en")
    scanned = paired.scan(_qr_page(computer))
    _qr_page(bystander)
    paired.qr_pin(scanned["id"], PIN)
    bystander.get("/login/app/")
    assert signed_in_as(bystander) is None
    computer.get("/login/app/")
    assert signed_in_as(computer) is not None


def test_notices_name_the_lock(paired):
    assert "%(when)s" not in notice_message("app_not_me", language="en").body


def test_approval_answers_are_limited_per_key(paired, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_approval_per_key": (2, 900)}}
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    wrong = next(n for n in waiting["numbers"] if n != number)
    paired.approve(waiting["id"], wrong)  # refuses that login
    with pytest.raises(ApiRefused) as refused:
        paired.approve(waiting["id"], number)  # answered already (409), and counted
    assert refused.value.status == 409
    with pytest.raises(ApiRefused) as refused:
        paired.approve(waiting["id"], number)
    assert refused.value.status == 429 and "retry-after" in refused.value.answer.headers


def test_answers_to_requests_that_do_not_exist_are_counted(paired, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_approval_per_key": (2, 900)}}
    for _ in range(2):
        with pytest.raises(ApiRefused) as refused:
            paired.approve(str(uuid.uuid4()), 7)
        assert refused.value.status == 404
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    with pytest.raises(ApiRefused) as refused:
        paired.approve(waiting["id"], number)
    assert refused.value.status == 429
    assert browser.get("/login/approve/").status_code == 200  # still waiting: the answer was not taken


def test_approval_prompts_are_limited_per_key(paired, settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "throttles": {
        **settings.CHAVE_POLICY["throttles"], "app_prompt_per_key": (2, 3600)}}
    for _ in range(2):
        assert choose(past_the_pin(), "app_approve")["Location"] == "/login/approve/"
    browser = past_the_pin()
    response = choose(browser, "app_approve")
    assert response["Location"] == "/login/channel/"
    assert says("Too many sign-in requests were sent to your app recently. You can try again %(wait)s, "
                "or choose another way to receive the code.")[:30] in \
        body(browser.get("/login/channel/"))


def test_the_history_shows_app_sign_ins_with_the_device_and_hides_bookkeeping(paired, area):
    browser = past_the_pin()
    number, waiting = _waiting(browser, paired)
    paired.approve(waiting["id"], number)
    browser.get("/login/approve/")
    page = body(area.get("/area/history/"))
    assert says("Key, approved in the Chave app") in page and says("Chave app added") in page
    assert 'data-event="app.approval"' not in page and 'data-event="app.pairing"' not in page
