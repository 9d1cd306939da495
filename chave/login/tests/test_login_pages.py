"""The login through the pages, as a citizen does it (Django test client)."""

import datetime as dt

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.test import override_settings
from django.utils import timezone

from chave.audit.models import AuditEvent
from chave.codes import services as codes
from chave.codes.models import OneTimeCode
from chave.identity import contacts
from chave.identity.models import ContactKind, KeyStatus, mask
from chave.login import services
from chave.login.models import LoginTransaction

from .pages import (PHONE, PIN, body, client_in, ends_at, field_error, notices, says, session_key, sign_in,
                    speak, summary)

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "maria@example.pt"


@pytest.fixture
def en(client):
    return speak(client, "en")


def _signed_in_as(client):
    """What the session holds after the login (read the way the service reads it)."""
    data = SessionStore(session_key(client)).get(services.SESSION_SIGNED_IN)
    return services.SignedIn(**data) if data else None


def test_pin_then_sms_code_signs_in_at_level_3(en, make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=PIN)
    response = sign_in(en, "912 345 678", PIN)
    assert ends_at(response, "/login/code/")
    page = en.get("/login/code/")
    assert mask(ContactKind.MOBILE, PHONE) in body(page)
    code = outbox.last_code(PHONE)
    response = en.post("/login/code/", {"code": code})
    assert ends_at(response, "/login/done/")
    done = en.get("/login/done/")
    assert done.status_code == 200
    html = body(done)
    assert "Maria Teste Silva" in html
    assert 'id="level">3<' in html
    assert says("Digital Mobile Key, code by SMS") in html
    who = _signed_in_as(en)
    assert (who.citizen_id, who.method, who.assurance_level) == (key.citizen_id, "sms", 3)
    login = AuditEvent.objects.get(event="login", citizen=key.citizen)
    assert login.outcome == "ok" and login.channel == "sms" and login.detail["level"] == 3
    # Neither the PIN nor the code reached the audit log.
    for event in AuditEvent.objects.all():
        assert code not in str(event.detail) and PIN not in str(event.detail)


def test_portuguese_numbers_need_no_country_code(make_citizen):
    make_citizen(phone=PHONE, pin=PIN)
    for typed in ["912345678", "912 345 678", "+351 912 345 678", "00351912345678", "+351912345678"]:
        assert ends_at(sign_in(client_in("en"), typed, PIN), "/login/code/"), typed


def test_a_foreign_mobile_is_typed_with_its_country_code(en, make_citizen, outbox):
    make_citizen(phone="+33612345678", pin=PIN)
    assert ends_at(sign_in(en, "+33 6 12 34 56 78", PIN), "/login/code/")
    assert outbox.last_code("+33612345678")


def test_email_only_key_gets_the_code_by_email_at_level_2(en, make_citizen, outbox):
    key = make_citizen(phone=None, email=EMAIL, pin=PIN)
    response = sign_in(en, "Maria@Example.PT", PIN)
    assert ends_at(response, "/login/code/")  # one channel: no choice to make
    page = body(en.get("/login/code/"))
    assert mask(ContactKind.EMAIL, EMAIL) in page
    assert ends_at(en.post("/login/code/", {"code": outbox.last_code(EMAIL)}), "/login/done/")
    assert 'id="level">2<' in body(en.get("/login/done/"))
    assert _signed_in_as(en).method == "email"
    assert AuditEvent.objects.get(event="login", citizen=key.citizen).detail["level"] == 2


@pytest.mark.parametrize("choice, level", [("sms", 3), ("email", 2)])
def test_with_phone_and_email_the_citizen_chooses_and_gets_that_level(en, make_citizen, outbox, choice, level):
    key = make_citizen(phone=PHONE, email=EMAIL, pin=PIN)
    response = sign_in(en, EMAIL, PIN)
    assert ends_at(response, "/login/channel/")
    assert not OneTimeCode.objects.exists()  # nothing sent before the citizen chooses
    page = body(en.get("/login/channel/"))
    assert says("SMS to %s") % mask(ContactKind.MOBILE, PHONE) in page
    assert says("E-mail to %s") % mask(ContactKind.EMAIL, EMAIL) in page
    assert page.index('value="sms"') < page.index('value="email"')  # best level first
    assert ends_at(en.post("/login/channel/", {"channel": choice}), "/login/code/")
    destination = PHONE if choice == "sms" else EMAIL
    assert ends_at(en.post("/login/code/", {"code": outbox.last_code(destination)}), "/login/done/")
    assert f'id="level">{level}<' in body(en.get("/login/done/"))
    assert AuditEvent.objects.get(event="login", citizen=key.citizen).detail["level"] == level


def test_the_channel_page_starts_on_the_channel_the_last_login_used(client, make_citizen, outbox):
    """A first login chooses; the next one finds that choice made, and may change it."""
    import re

    make_citizen(phone=PHONE, email=EMAIL, pin=PIN)

    def checked(page):
        return re.findall(r'<input type="radio" name="channel" value="([^"]+)"[^>]* checked', page)

    first = client_in("en")
    assert ends_at(sign_in(first, PHONE, PIN), "/login/channel/")
    assert checked(body(first.get("/login/channel/"))) == []  # nothing to go by yet
    assert ends_at(first.post("/login/channel/", {"channel": "email"}), "/login/code/")
    assert ends_at(first.post("/login/code/", {"code": outbox.last_code(EMAIL)}), "/login/done/")

    again = client_in("en")
    assert ends_at(sign_in(again, PHONE, PIN), "/login/channel/")
    assert checked(body(again.get("/login/channel/"))) == ["email"]
    assert ends_at(again.post("/login/channel/", {"channel": "sms"}), "/login/code/")  # still a choice
    assert ends_at(again.post("/login/code/", {"code": outbox.last_code(PHONE)}), "/login/done/")
    third = client_in("en")
    assert ends_at(sign_in(third, PHONE, PIN), "/login/channel/")
    assert checked(body(third.get("/login/channel/"))) == ["sms"]


@override_settings(CHAVE_X_PROVIDER="sink")
def test_x_direct_message_is_offered_when_the_channel_is_on_and_gives_level_2(en, make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=PIN)
    started = contacts.request_verification(key, ContactKind.X, "1234567890")
    assert contacts.confirm(key, ContactKind.X, "1234567890", transaction_id=started.transaction,
                            code=outbox.last_code("1234567890")).ok
    assert ends_at(sign_in(en, "912345678", PIN), "/login/channel/")
    page = body(en.get("/login/channel/"))
    assert says("X direct message to %s") % "X •••890" in page
    assert ends_at(en.post("/login/channel/", {"channel": "x"}), "/login/code/")
    assert "X •••890" in body(en.get("/login/code/"))
    assert ends_at(en.post("/login/code/", {"code": outbox.last_code("1234567890")}), "/login/done/")
    assert 'id="level">2<' in body(en.get("/login/done/"))
    assert AuditEvent.objects.get(event="login", citizen=key.citizen).detail["level"] == 2


def test_x_is_not_offered_while_the_channel_is_off(en, make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=PIN)
    with override_settings(CHAVE_X_PROVIDER="sink"):
        started = contacts.request_verification(key, ContactKind.X, "1234567890")
        contacts.confirm(key, ContactKind.X, "1234567890", transaction_id=started.transaction,
                         code=outbox.last_code("1234567890"))
    # X is off (the default): the phone is the only channel, so the code goes straight by SMS.
    assert ends_at(sign_in(en, "912345678", PIN), "/login/code/")
    assert en.post("/login/channel/", {"channel": "x"}).status_code == 400
    assert set(OneTimeCode.objects.filter(purpose="login").values_list("channel", flat=True)) == {"sms"}


def test_code_page_shows_time_left_and_offers_a_resend_only_after_the_cooldown(en, make_citizen, outbox, clock):
    make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    first = outbox.last_code(PHONE)
    page = en.get("/login/code/")
    expires = timezone.localtime(clock.now() + dt.timedelta(minutes=5)).strftime("%H:%M:%S")
    assert says("It works until %(until)s (about %(minutes)s minutes).", until=expires, minutes=5) in " ".join(
        body(page).split())
    assert says("Send a new code") not in body(page)
    retry = timezone.localtime(clock.now() + dt.timedelta(seconds=30)).strftime("%H:%M:%S")
    assert retry in body(page)

    # Asking anyway before the cooldown is refused with the time to wait.
    refused = en.post("/login/code/resend/", follow=True)
    assert says("Please wait: you can ask for a new code %(wait)s.", wait="in 1 minute (at %s)" % retry[:5]) in \
        notices(refused)

    clock.travel(dt.timedelta(seconds=30))
    page = en.get("/login/code/")
    assert says("Send a new code") in body(page)
    resent = en.post("/login/code/resend/", follow=True)
    assert says("We sent you a new code. Only the most recent one works.") in notices(resent)
    second = outbox.last_code(PHONE)
    assert OneTimeCode.objects.filter(purpose="login").count() == 2

    # Only the newest code works (FAQ: "the last message received is valid"). (Two random codes
    # are equal once in a million runs; then there is no older code to try.)
    if second != first:
        stale = en.post("/login/code/", {"code": first})
        assert stale.status_code == 400
        # (The codes service checks only the newest code, so an older one reads as a wrong code.)
        assert field_error(stale, "code") == "The code is not correct. You can try 2 more times."
    assert ends_at(en.post("/login/code/", {"code": second}), "/login/done/")


def test_after_three_sends_the_page_says_so_and_offers_to_start_again(en, make_citizen, outbox, clock):
    make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    for _ in range(2):
        clock.travel(dt.timedelta(seconds=30))
        en.post("/login/code/resend/")
    assert OneTimeCode.objects.filter(purpose="login").count() == 3
    clock.travel(dt.timedelta(seconds=30))
    page = body(en.get("/login/code/"))
    assert says("You have asked for the most codes allowed for this sign-in.") in page
    assert says("Send a new code") not in page
    refused = en.post("/login/code/resend/", follow=True)
    assert says("You have asked for the most codes allowed for this sign-in. Please start again.") in notices(refused)
    assert OneTimeCode.objects.filter(purpose="login").count() == 3


def test_an_expired_code_is_refused_and_the_page_says_it_expired(en, make_citizen, outbox, clock):
    make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    code = outbox.last_code(PHONE)
    clock.travel(dt.timedelta(minutes=5))
    response = en.post("/login/code/", {"code": code})
    assert response.status_code == 400
    assert field_error(response, "code") == says("This code has expired. Ask for a new code.")
    assert says("Send a new code") in body(response)


def test_three_wrong_codes_spend_the_code(en, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    code = outbox.last_code(PHONE)
    wrong = f"{(int(code) + 1) % 1000000:06d}"
    first = en.post("/login/code/", {"code": wrong})
    assert first.status_code == 400
    assert field_error(first, "code") == "The code is not correct. You can try 2 more times."
    en.post("/login/code/", {"code": wrong})
    third = en.post("/login/code/", {"code": wrong})
    assert field_error(third, "code") == says("Too many wrong codes: this code no longer works. Ask for a new code.")
    after = en.post("/login/code/", {"code": code})
    assert after.status_code == 400 and "done" not in after.get("Location", "")
    assert not AuditEvent.objects.filter(event="login").exists()


def test_a_session_id_chosen_by_an_attacker_is_never_the_one_the_login_gets(make_citizen, outbox):
    # A browser given a session id that names no stored session (set by an attacker before the
    # citizen arrives): the login's session is written under a key Chave draws.
    make_citizen(phone=PHONE, pin=PIN)
    chosen = "attackerchosensessionid123456789"
    browser = client_in("en")
    browser.cookies["sessionid"] = chosen
    sign_in(browser, "912345678", PIN)
    assert session_key(browser) not in (None, "", chosen)
    assert not SessionStore().exists(chosen)
    assert ends_at(browser.post("/login/code/", {"code": outbox.last_code(PHONE)}), "/login/done/")
    assert session_key(browser) != chosen and not SessionStore().exists(chosen)


def test_session_is_rotated_when_the_pin_is_accepted_and_when_the_login_completes(en, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    planted = en.session.session_key  # a session that exists before the login (e.g. fixed by an attacker)
    assert planted
    sign_in(en, "912345678", PIN)
    after_pin = session_key(en)
    assert after_pin and after_pin != planted
    assert not SessionStore().exists(planted)

    # Whoever holds the planted session id has no part in the login.
    attacker = client_in("en")
    attacker.cookies["sessionid"] = planted
    assert ends_at(attacker.get("/login/code/"), "/login/")

    code = outbox.last_code(PHONE)
    assert ends_at(en.post("/login/code/", {"code": code}), "/login/done/")
    after_code = session_key(en)
    assert after_code and after_code not in (planted, after_pin)
    assert not SessionStore().exists(after_pin)
    # The session id seen during the PIN step (e.g. by a shoulder-surfing script) signs nobody in.
    attacker.cookies["sessionid"] = after_pin
    assert ends_at(attacker.get("/login/done/"), "/login/")
    assert _signed_in_as(en) is not None


def test_replaying_a_used_code_signs_nobody_in(en, make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    code = outbox.last_code(PHONE)
    copy = client_in("en")
    copy.cookies["sessionid"] = session_key(en)  # the same browser session, captured before the code
    assert ends_at(en.post("/login/code/", {"code": code}), "/login/done/")
    replay = copy.post("/login/code/", {"code": code}, follow=True)
    assert replay.redirect_chain[-1][0].endswith("/login/")
    assert says("Your sign-in has expired or was not started. Please start again.") in notices(replay)
    # And in the signed-in session itself, the used code does nothing more.
    again = en.post("/login/code/", {"code": code}, follow=True)
    assert again.redirect_chain[-1][0].endswith("/login/")
    assert AuditEvent.objects.filter(event="login").count() == 1
    tx = LoginTransaction.objects.get()
    assert tx.status == LoginTransaction.Status.COMPLETED
    # Even straight at the service, the code is spent.
    assert codes.verify_code(purpose="login", transaction=str(tx.pk), submitted=code).reason == "used"


def test_a_code_from_another_login_is_refused(make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    first, second = client_in("en"), client_in("en")
    sign_in(first, "912345678", PIN)
    first_code = outbox.last_code(PHONE)
    sign_in(second, "912345678", PIN)  # same citizen, another browser: another transaction
    second_code = outbox.last_code(PHONE)
    assert LoginTransaction.objects.count() == 2
    if first_code != second_code:
        crossed = first.post("/login/code/", {"code": second_code})
        assert crossed.status_code == 400
        assert field_error(crossed, "code") == "The code is not correct. You can try 2 more times."
    assert ends_at(first.post("/login/code/", {"code": first_code}), "/login/done/")
    # The second browser's login is still its own, and its own code still works there.
    assert ends_at(second.post("/login/code/", {"code": second_code}), "/login/done/")


def test_a_temporary_pin_must_be_replaced_before_the_login_completes(en, make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=None)
    temporary = key.temporary_pin
    assert temporary and key.pin_is_temporary
    assert ends_at(sign_in(en, "912345678", temporary), "/login/code/")
    code = outbox.last_code(PHONE)
    assert ends_at(en.post("/login/code/", {"code": code}), "/login/new-pin/")
    # Not signed in yet: the done page and the other steps lead back to the PIN change.
    assert ends_at(en.get("/login/done/"), "/login/")
    assert _signed_in_as(en) is None
    assert ends_at(en.get("/login/code/"), "/login/new-pin/")
    assert ends_at(en.get("/login/channel/"), "/login/new-pin/")

    page = en.get("/login/new-pin/")
    assert page.status_code == 200
    assert says("You signed in with a temporary PIN. Choose your own PIN before you continue.") in body(page)

    mismatch = en.post("/login/new-pin/", {"new_pin": "5820", "new_pin_again": "5821"})
    assert mismatch.status_code == 400
    assert field_error(mismatch, "new_pin_again") == says("The two PINs are not the same.")
    same = en.post("/login/new-pin/", {"new_pin": temporary, "new_pin_again": temporary})
    assert same.status_code == 400
    assert field_error(same, "new_pin") == says("Choose a PIN different from the current one.")
    key.refresh_from_db()
    assert key.pin_is_temporary
    before = session_key(en)

    done = en.post("/login/new-pin/", {"new_pin": "5820", "new_pin_again": "5820"}, follow=True)
    assert done.redirect_chain[-1][0].endswith("/login/done/")
    assert says("Your new PIN is set.") in notices(done)
    assert 'id="level">3<' in body(done)
    assert session_key(en) != before
    key.refresh_from_db()
    assert not key.pin_is_temporary
    assert AuditEvent.objects.filter(event="pin.change", citizen=key.citizen).count() == 1
    assert AuditEvent.objects.get(event="login", citizen=key.citizen).detail["level"] == 3

    # The temporary PIN is gone; the new one works.
    later = client_in("en")
    assert sign_in(later, "912345678", temporary).status_code == 400
    assert ends_at(sign_in(later, "912345678", "5820"), "/login/code/")


def test_a_login_in_progress_ends_when_the_key_is_cancelled(en, make_citizen, outbox):
    from chave.identity import services as identity

    key = make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    code = outbox.last_code(PHONE)
    identity.cancel_key(key, by="test")
    response = en.post("/login/code/", {"code": code}, follow=True)
    assert response.redirect_chain[-1][0].endswith("/login/")
    assert says("Your sign-in has expired or was not started. Please start again.") in notices(response)
    assert not AuditEvent.objects.filter(event="login").exists()
    key.refresh_from_db()
    assert key.status == KeyStatus.CANCELLED


def test_sign_out_ends_the_session(en, make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    en.post("/login/code/", {"code": outbox.last_code(PHONE)})
    signed = session_key(en)
    response = en.post("/login/logout/", follow=True)
    assert says("You have signed out.") in notices(response)
    assert not SessionStore().exists(signed)
    assert ends_at(en.get("/login/done/"), "/login/")
    assert AuditEvent.objects.filter(event="logout", citizen=key.citizen).exists()


def test_three_wrong_pins_lock_the_key(en, make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    for _ in range(3):
        sign_in(en, "912345678", "5820")
    key.refresh_from_db()
    assert key.status == KeyStatus.LOCKED
    # Even the right PIN is refused while locked, with the same words as a wrong one.
    response = sign_in(en, "912345678", PIN)
    assert response.status_code == 400
    assert summary(response) == says("There is a problem") + " " + says(
        "The mobile number, e-mail or PIN is not correct. After several wrong PINs the key is locked "
        "for a while, and its owner is told by SMS or e-mail.")


def test_a_lock_by_someone_else_does_not_stop_a_login_past_its_pin(en, make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=PIN)
    sign_in(en, "912345678", PIN)
    code = outbox.last_code(PHONE)
    # Whoever knows the number locks the key with wrong PINs while the owner reads the SMS.
    for _ in range(3):
        sign_in(client_in("en"), "912345678", "5820")
    key.refresh_from_db()
    assert key.status == KeyStatus.LOCKED
    assert ends_at(en.post("/login/code/", {"code": code}), "/login/done/")


@override_settings(CHAVE_TRUSTED_PROXIES=1)
def test_the_client_address_comes_from_the_trusted_proxy_and_garbage_is_ignored(make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=PIN)
    for forwarded, recorded in [("198.51.100.1, 203.0.113.9", "203.0.113.9"), ("not-an-ip", "127.0.0.1"),
                                ("", "127.0.0.1")]:
        client = client_in("en")
        response = sign_in(client, "912345678", PIN, HTTP_X_FORWARDED_FOR=forwarded)
        assert ends_at(response, "/login/code/"), forwarded
        attempt = AuditEvent.objects.filter(event="pin.attempt", citizen=key.citizen).order_by("-id").first()
        assert attempt.ip == recorded, forwarded
        assert LoginTransaction.objects.order_by("-created_at").first().ip == recorded
