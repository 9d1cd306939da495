"""The personal area's pages as a citizen (or an attacker) uses them: entry, the key's data,
changing the PIN and the contacts, cancelling the key, with bad input and replays."""

import datetime as dt
import re

import pytest
from django.test import Client

from chave.audit.models import AuditEvent
from chave.codes.models import OneTimeCode
from chave.delivery.messages import notice_message
from chave.delivery.models import DevOutboxMessage
from chave.identity import services as identity
from chave.identity.models import Contact, ContactKind, Key, KeyStatus
from chave.identity.signals import key_cancelled
from chave.login.tests.pages import body, field_error, says
from chave.portal.models import KeySession

from .helpers import EMAIL, PHONE, PIN, client_in, enter_with_card, enter_with_key

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PIN = "5830"
NEW_PHONE = "+351913000111"


def notices_to(outbox, to: str, event: str, language: str = "pt-pt") -> int:
    outbox.last(to)  # runs the worker
    text = notice_message(event, language=language).body
    return DevOutboxMessage.objects.filter(to=to, body=text).count()


# --- Entry and authorization -------------------------------------------------------------------


AREA_PAGES = ["/area/", "/area/pin/", "/area/pin/confirm/", "/area/contact/mobile/", "/area/contact/confirm/",
              "/area/cancel/", "/area/history/", "/area/portals/", "/area/export/", "/area/history/1/not-me/"]


@pytest.mark.parametrize("path", AREA_PAGES)
def test_signed_out_every_page_sends_to_the_entry_and_back(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response["Location"].startswith("/area/enter/?next=")
    response = client.post(path, {"pin": PIN})
    assert response.status_code == 302 and response["Location"].startswith("/area/enter/")


def test_entry_offers_the_key_and_the_citizen_card(client):
    page = body(client.get("/area/enter/?next=/area/history/"))
    assert 'href="/area/enter/key/?next=%2Farea%2Fhistory%2F"' in page
    assert re.search(r'id="enter-card" href="/card/\?next=/area/history/"', page)


def test_the_key_login_comes_back_to_the_area_without_naming_a_portal(key, outbox):
    client = client_in("en")
    client.get("/area/enter/key/?next=/area/history/")
    page = body(client.get("/login/"))
    assert 'id="portal-request"' not in page  # the area is Chave itself, not a portal asking
    enter_with_key(client, outbox, next_path="/area/history/")
    assert client.get("/area/history/").status_code == 200
    event = AuditEvent.objects.filter(event="login", citizen=key.citizen).latest("at")
    assert event.detail["level"] == 3 and "portal" not in event.detail


@pytest.mark.parametrize("target", ["https://evil.example/area/", "//evil.example/area/", "/login/", "/area/\\x",
                                    "/area/" + "a" * 600, ""])
def test_the_way_back_is_only_ever_a_page_of_the_area(client, target):
    response = client.get("/area/enter/key/", {"next": target})
    assert response.status_code == 302
    page = body(client.get("/area/enter/", {"next": target}))
    assert 'href="/area/enter/key/?next=%2Farea%2F"' in page


def test_the_header_offers_the_area_only_when_signed_in(client, area, key):
    signed_out = body(client.get("/"))
    assert 'id="nav-area"' not in signed_out and 'id="nav-sign-out"' not in signed_out
    assert 'id="nav-sign-in" href="/login/"' in signed_out
    signed_in = body(area.get("/", HTTP_ACCEPT_LANGUAGE="pt-pt"))
    names = key.citizen.full_name.split()
    # Who is signed in, the personal area and "Terminar sessão" instead of "Entrar".
    assert re.search(r'id="nav-who">.*?</span>' + re.escape(f"{names[0]} {names[-1]}") + "</li>", signed_in)
    assert 'id="nav-area" href="/area/"' in signed_in and 'id="nav-sign-in"' not in signed_in
    assert 'id="nav-sign-out"' in signed_in
    assert area.post("/login/logout/")["Location"] == "/"
    assert 'id="nav-area"' not in body(area.get("/"))


def test_the_recover_and_unlock_entry_goes_to_the_citizen_card(area):
    page = body(area.get("/area/"))
    assert 'id="go-recover" href="/card/recover/"' in page
    assert "/area/recover" not in page  # the area itself has no way around the card


# --- Seeing the key ----------------------------------------------------------------------------


def test_the_home_page_shows_the_key_with_contacts_masked(area, key):
    page = body(area.get("/area/"))
    assert "Maria Teste Silva" in page and f"NIC {key.citizen.doc_number}" in page
    assert "+351••••••678" in page and "m••••@example.pt" in page
    assert PHONE not in page and EMAIL not in page
    assert 'data-status="active"' in page
    assert 'id="last-used"' in page and says("Never") not in page.split('id="last-used"')[1][:80]
    assert "assurance level 3" in page


def test_a_locked_key_reads_as_locked_and_points_to_the_card(area, key):
    Key.objects.filter(pk=key.pk).update(status=KeyStatus.BLOCKED)
    page = body(area.get("/area/"))
    assert 'data-status="blocked"' in page and 'id="locked-notice"' in page


# --- Changing the PIN --------------------------------------------------------------------------


def _pin_confirm(client, *, code, new=NEW_PIN, again=None):
    return client.post("/area/pin/confirm/", {"code": code, "new_pin": new, "new_pin_again": again or new})


def test_change_pin_with_current_pin_and_code(area, key, outbox):
    response = area.post("/area/pin/", {"pin": PIN})
    assert response.status_code == 302 and response["Location"] == "/area/pin/confirm/"
    assert "SMS" in body(area.get("/area/pin/confirm/"))
    # The message says what the code is for, not "to sign in": a citizen who did not ask is warned.
    assert "to change the PIN of your Digital Mobile Key" in outbox.last(PHONE).body
    response = _pin_confirm(area, code=outbox.last_code(PHONE))
    assert response.status_code == 302 and response["Location"] == "/area/"
    assert identity.check_login_pin(Key.objects.get(pk=key.pk), NEW_PIN).ok
    assert not identity.check_login_pin(Key.objects.get(pk=key.pk), PIN).ok
    assert notices_to(outbox, PHONE, "pin_changed") == 1 and notices_to(outbox, EMAIL, "pin_changed") == 1
    # The same POST again changes nothing: the step is over.
    replay = _pin_confirm(area, code="123456", new="6941")
    assert replay.status_code == 302 and replay["Location"] == "/area/pin/"
    assert identity.check_login_pin(Key.objects.get(pk=key.pk), NEW_PIN).ok


def test_a_wrong_current_pin_counts_and_sends_no_code(area, key, outbox):
    before = OneTimeCode.objects.count()
    response = area.post("/area/pin/", {"pin": "5827"})
    assert response.status_code == 400
    assert "The PIN is not correct." in body(response)
    assert Key.objects.get(pk=key.pk).pin_failures == 1
    assert OneTimeCode.objects.count() == before


@pytest.mark.parametrize("data", [{"pin": "1" * 300}, {"pin": "12ab"}, {"pin": ["4719", "4719"]}, {}])
def test_bad_current_pin_input_is_refused_before_any_check(area, key, data):
    response = area.post("/area/pin/", data)
    assert response.status_code == 400
    assert field_error(response, "pin")
    assert Key.objects.get(pk=key.pk).pin_failures == 0


def test_wrong_code_then_bad_new_pins_then_the_same_pin(area, key, outbox):
    area.post("/area/pin/", {"pin": PIN})
    code = outbox.last_code(PHONE)
    wrong = "000000" if code != "000000" else "111111"
    response = _pin_confirm(area, code=wrong)
    assert response.status_code == 400 and "You can try 2 more times." in field_error(response, "code")
    # A PIN the rules refuse is refused before the code is looked at (the code stays usable).
    response = _pin_confirm(area, code=code, new="1234")
    assert response.status_code == 400 and field_error(response, "new_pin")
    response = _pin_confirm(area, code=code, new=NEW_PIN, again="5831")
    assert response.status_code == 400 and field_error(response, "new_pin_again")
    # The current PIN again: the code was right, so only a new PIN is asked for.
    response = _pin_confirm(area, code=code, new=PIN)
    assert response.status_code == 400
    assert field_error(response, "new_pin") == says("Choose a PIN different from the current one.")
    assert 'name="code"' not in body(response)
    response = area.post("/area/pin/confirm/", {"new_pin": NEW_PIN, "new_pin_again": NEW_PIN})
    assert response.status_code == 302
    assert identity.check_login_pin(Key.objects.get(pk=key.pk), NEW_PIN).ok


def test_a_code_of_another_step_does_not_change_the_pin(area, key, outbox):
    area.post("/area/pin/", {"pin": PIN})
    response = _pin_confirm(area, code="12345x")
    assert response.status_code == 400 and field_error(response, "code")
    session = area.session
    session["chave.portal.pending"] = {**session["chave.portal.pending"], "tx": "area-pin-forged"}
    session.save()
    response = _pin_confirm(area, code=outbox.last_code(PHONE))
    assert response.status_code == 400
    assert identity.check_login_pin(Key.objects.get(pk=key.pk), PIN).ok


def _codes_to(outbox, to):
    outbox.last(to)
    return DevOutboxMessage.objects.filter(to=to, body__regex=r"#[0-9]{6}$").count()


def test_resend_respects_the_cooldown_and_only_the_newest_code_works(area, key, outbox, clock):
    before = _codes_to(outbox, PHONE)  # the login's
    area.post("/area/pin/", {"pin": PIN})
    first = outbox.last_code(PHONE)
    response = area.post("/area/code/resend/")
    assert response["Location"] == "/area/pin/confirm/"
    assert _codes_to(outbox, PHONE) == before + 1  # too soon: nothing sent
    clock.travel(dt.timedelta(seconds=31))
    area.post("/area/code/resend/")
    assert _codes_to(outbox, PHONE) == before + 2
    if outbox.last_code(PHONE) != first:
        assert _pin_confirm(area, code=first).status_code == 400
    assert _pin_confirm(area, code=outbox.last_code(PHONE)).status_code == 302


# --- Changing a contact ------------------------------------------------------------------------


def test_change_mobile_number_confirmed_by_code_old_one_told(area, key, outbox):
    response = area.post("/area/contact/mobile/", {"value": "913 000 111"})
    assert response.status_code == 302 and response["Location"] == "/area/contact/confirm/"
    assert "+351••••••111" in body(area.get("/area/contact/confirm/"))
    response = area.post("/area/contact/confirm/", {"code": outbox.last_code(NEW_PHONE)})
    assert response.status_code == 302 and response["Location"] == "/area/"
    mobile = Contact.objects.get(key=key, kind=ContactKind.MOBILE)
    assert mobile.value == NEW_PHONE and mobile.verified_at is not None
    assert notices_to(outbox, PHONE, "contact_changed") == 1  # the old number is told
    assert notices_to(outbox, NEW_PHONE, "contact_changed") == 1
    assert notices_to(outbox, EMAIL, "contact_changed") == 1
    assert identity.find_key_by_contact(ContactKind.MOBILE, PHONE) is None
    assert identity.find_key_by_contact(ContactKind.MOBILE, NEW_PHONE).pk == key.pk


def test_an_email_sign_in_cannot_replace_the_mobile_number_but_may_change_the_email(key, outbox):
    client = client_in()
    enter_with_key(client, outbox, identifier=PHONE, channel="email")  # level 2
    page = client.get("/area/contact/mobile/")
    assert page.status_code == 403 and 'id="stronger"' in body(page) and 'name="value"' not in body(page)
    assert 'href="/card/?next=%2Farea%2Fcontact%2Fmobile%2F"' in body(page)
    response = client.post("/area/contact/mobile/", {"value": "913 000 111"})
    assert response.status_code == 403
    assert not OneTimeCode.objects.filter(destination=NEW_PHONE).exists()
    assert Contact.objects.get(key=key, kind=ContactKind.MOBILE).value == PHONE
    assert client.post("/area/contact/email/", {"value": "maria.nova@example.pt"}).status_code == 302


def test_entered_with_the_citizen_card_the_mobile_number_can_be_replaced(key, outbox):
    client = client_in()
    enter_with_card(client, key)
    assert client.post("/area/contact/mobile/", {"value": "913 000 111"}).status_code == 302


def test_change_email_address(area, key, outbox):
    response = area.post("/area/contact/email/", {"value": " Maria.Nova@Example.PT "})
    assert response.status_code == 302
    area.post("/area/contact/confirm/", {"code": outbox.last_code("maria.nova@example.pt")})
    assert Contact.objects.get(key=key, kind=ContactKind.EMAIL).value == "maria.nova@example.pt"
    assert notices_to(outbox, EMAIL, "contact_changed") == 1


def test_a_number_held_by_another_key_is_refused_in_the_rule_s_words(area, make_citizen):
    make_citizen(phone=NEW_PHONE)
    response = area.post("/area/contact/mobile/", {"value": NEW_PHONE})
    assert response.status_code == 400
    assert field_error(response, "value") == says("This mobile number is already tied to another Digital Mobile Key.")
    assert not OneTimeCode.objects.filter(destination=NEW_PHONE).exclude(purpose="login").exists()


@pytest.mark.parametrize(("kind", "value", "message"), [
    ("mobile", "call me on 913000111", "Enter a mobile number, such as 912 345 678."),
    ("mobile", "213456789", "This number is not a mobile number."),
    ("mobile", "9" * 300, "This is not a valid mobile number."),
    ("mobile", PHONE, "This is already the contact of your key."),
    ("email", "not-an-address", "This is not a valid e-mail address."),
    ("email", "a" * 250 + "@example.pt", "This e-mail address is too long."),
])
def test_bad_contacts_are_refused_with_a_clear_message(area, kind, value, message):
    response = area.post(f"/area/contact/{kind}/", {"value": value})
    assert response.status_code == 400
    assert field_error(response, "value") == says(message)
    assert area.get("/area/contact/confirm/")["Location"] == "/area/"


def test_unknown_contact_kind_is_not_found(area):
    assert area.get("/area/contact/x/").status_code == 404


def test_a_wrong_code_keeps_the_old_contact(area, key, outbox):
    area.post("/area/contact/mobile/", {"value": NEW_PHONE})
    code = outbox.last_code(NEW_PHONE)
    response = area.post("/area/contact/confirm/", {"code": "000000" if code != "000000" else "111111"})
    assert response.status_code == 400 and field_error(response, "code")
    assert Contact.objects.get(key=key, kind=ContactKind.MOBILE).value == PHONE


def test_changing_a_contact_needs_a_recent_sign_in(area, clock, outbox):
    clock.travel(dt.timedelta(minutes=11))
    for path in ["/area/contact/mobile/", "/area/cancel/", "/area/export/"]:
        response = area.get(path)
        assert response.status_code == 302
        assert response["Location"].startswith("/area/enter/?next=") and "again=1" in response["Location"]
    assert area.post("/area/contact/mobile/", {"value": NEW_PHONE}).status_code == 302
    assert not OneTimeCode.objects.filter(destination=NEW_PHONE).exists()
    page = body(area.get("/area/enter/?next=/area/export/&again=1"))
    assert 'id="again"' in page
    assert area.get("/area/pin/").status_code == 200  # the PIN change asks for the PIN and a code itself
    assert area.get("/area/history/").status_code == 200


# --- Cancelling the key ------------------------------------------------------------------------


def test_cancel_needs_the_box_and_the_pin(area, key):
    response = area.post("/area/cancel/", {"pin": PIN})
    assert response.status_code == 400 and field_error(response, "confirm")
    response = area.post("/area/cancel/", {"confirm": "on", "pin": "5827"})
    assert response.status_code == 400 and field_error(response, "pin")
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE


def test_cancel_ends_everything_and_tells_the_citizen(area, key, outbox, make_citizen):
    received = []

    def receiver(sender, key, by, **kwargs):
        received.append((key.pk, by))

    key_cancelled.connect(receiver)
    try:
        other_browser = client_in("pt-pt")
        enter_with_key(other_browser, outbox, identifier=EMAIL, channel="email")
        response = area.post("/area/cancel/", {"confirm": "on", "pin": PIN})
    finally:
        key_cancelled.disconnect(receiver)
    assert response.status_code == 200
    assert says("Your key is cancelled") in body(response)
    assert Key.objects.get(pk=key.pk).status == KeyStatus.CANCELLED
    assert not Contact.objects.filter(key=key, live=True).exists()  # released
    assert received == [(key.pk, "citizen")]
    for browser in (area, other_browser):
        assert browser.get("/area/")["Location"].startswith("/area/enter/")
    assert not KeySession.objects.filter(key=key, ended_at__isnull=True).exists()
    assert notices_to(outbox, PHONE, "key_cancelled") == 1
    # The number is free for a new key.
    make_citizen(phone=PHONE)


def test_entered_with_the_citizen_card_cancel_needs_no_pin(key, outbox):
    client = client_in("en")
    enter_with_card(client, key)
    page = body(client.get("/area/cancel/"))
    assert 'name="pin"' not in page
    response = client.post("/area/cancel/", {"confirm": "on"})
    assert response.status_code == 200
    assert Key.objects.get(pk=key.pk).status == KeyStatus.CANCELLED


def test_a_cancelled_key_cannot_be_changed(key, outbox):
    client = client_in("en")
    enter_with_card(client, key)
    identity.cancel_key(key)
    for path in ["/area/pin/", "/area/contact/mobile/", "/area/cancel/"]:
        assert client.get(path)["Location"] == "/area/"
    assert client.get("/area/history/").status_code == 200


def test_forms_need_the_csrf_token(key, outbox):
    client = Client(enforce_csrf_checks=True)
    enter_with_card(client, key)
    for path, data in [("/area/pin/", {"pin": PIN}), ("/area/cancel/", {"confirm": "on"}),
                       ("/area/export/", {}), ("/area/code/resend/", {})]:
        assert client.post(path, data).status_code == 403
    assert Key.objects.get(pk=key.pk).status == KeyStatus.ACTIVE
