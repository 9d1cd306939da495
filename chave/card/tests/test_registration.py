"""Online registration with the Citizen Card, and recovering the PIN / unlocking the key, through
the pages (the card read by the real agent, codes read from the development outbox)."""

from __future__ import annotations

import datetime as dt

import re

import pytest

from chave import clock as service_clock
from chave.audit.models import AuditEvent
from chave.public import terms
from chave.identity.models import Citizen, KeyStatus
from chave.identity import pins

from .conftest import card_citizen

pytestmark = pytest.mark.django_db(transaction=True)

MOBILE, EMAIL, NEW_PIN = "+351916000111", "ana@example.pt", "5831"


def page_of(response) -> str:
    return response.content.decode()


def signed_in_with_card(browser_for, card, next_url="/card/register/"):
    browser = browser_for()
    response = browser.sign_in(card, next_url=next_url)
    assert response.status_code == 302 and response["Location"] == next_url
    return browser.client


def test_register_online_with_mobile_and_email(browser_for, cards, outbox):
    card = cards["good"]
    card_citizen(card)
    client = signed_in_with_card(browser_for, card)
    page = page_of(client.get("/card/register/"))
    assert card.full_name in page and 'name="mobile"' in page and 'name="email"' in page
    assert 'href="/terms/"' in page and 'name="terms"' in page
    # Without accepting the terms of use nothing is registered; accepting them is recorded.
    refused = client.post("/card/register/", {"mobile": "916 000 111", "email": EMAIL}, HTTP_ACCEPT_LANGUAGE="en")
    assert refused.status_code == 400 and "To register, read and accept the terms of use." in page_of(refused)
    assert not Citizen.objects.filter(doc_number=card.nic).exists()
    response = client.post("/card/register/", {"terms": "on", "mobile": "916 000 111", "email": EMAIL})
    assert response.status_code == 302 and response["Location"] == "/card/register/confirm/"
    citizen = Citizen.objects.get(doc_number=card.nic)
    assert citizen.key.status == KeyStatus.PENDING and citizen.full_name == card.full_name
    accepted = terms.accepted(citizen)
    assert accepted.version == terms.TERMS_VERSION and accepted.channel == "web"
    page = page_of(client.get("/card/register/confirm/", HTTP_ACCEPT_LANGUAGE="en"))
    assert 'id="sent-mobile"' in page and 'id="sent-email"' in page
    # Each code field says which contact it is for; the "new code" line once per channel.
    assert re.search(r'<label for="id_mobile-code">Code sent by SMS to \+351[^<]*111</label>', page)
    assert re.search(r'<label for="id_email-code">Code sent by e-mail to [^<]+</label>', page)
    assert page.count("You can ask for a new code by SMS") == 1 and page.count("You can ask for a new code by e-mail") == 1
    # A wrong code says so and confirms nothing; then both right codes.
    wrong = client.post("/card/register/confirm/", {"mobile-code": "000000", "email-code": ""})
    assert wrong.status_code == 400 and "The code is not correct" in page_of(wrong)
    response = client.post("/card/register/confirm/", {"mobile-code": outbox.last_code(MOBILE),
                                                       "email-code": outbox.last_code(EMAIL)})
    assert response.status_code == 302 and response["Location"] == "/card/register/pin/"
    mismatch = client.post("/card/register/pin/", {"new_pin": NEW_PIN, "new_pin_again": "5832"})
    assert mismatch.status_code == 400 and "The two PINs are not the same." in page_of(mismatch)
    trivial = client.post("/card/register/pin/", {"new_pin": "1234", "new_pin_again": "1234"})
    assert trivial.status_code == 400
    response = client.post("/card/register/pin/", {"new_pin": NEW_PIN, "new_pin_again": NEW_PIN})
    assert response.status_code == 302 and response["Location"] == "/card/register/done/"
    page = page_of(client.get("/card/register/done/"))
    assert 'id="register-done"' in page
    key = Citizen.objects.get(doc_number=card.nic).key
    assert key.status == KeyStatus.ACTIVE and not key.pin_is_temporary and pins.verify(key.pin_hash, NEW_PIN)[0]
    assert key.contacts.filter(verified_at__isnull=False).count() == 2
    # Told by SMS and e-mail that the key is active.
    assert "is active" in outbox.last(MOBILE).body and "is active" in outbox.last(EMAIL).body
    assert client.session["chave.signed_in"]["method"] == "citizen_card"
    assert AuditEvent.objects.filter(event="key.activate", citizen=key.citizen).exists()
    assert NEW_PIN not in str(list(AuditEvent.objects.values_list("detail", flat=True)))


def test_registration_needs_a_card_read_in_this_session(client, cards, clock):
    response = client.get("/card/register/")
    assert response.status_code == 302 and response["Location"] == "/card/?next=%2Fcard%2Fregister%2F"


def test_a_card_read_too_long_ago_must_be_read_again(browser_for, cards, clock):
    from chave import policy

    card = cards["good"]
    card_citizen(card)
    client = signed_in_with_card(browser_for, card)
    clock.travel(dt.timedelta(seconds=policy.get("card_verified_seconds") + 1))
    response = client.get("/card/register/")
    assert response.status_code == 302 and response["Location"].startswith("/card/?next=")


@pytest.mark.parametrize("case, words", [
    ("unknown", "go to a counter"),
    ("young", "for people aged 16 or over"),
    ("document_expired", "Your Citizen Card has expired"),
])
def test_registration_refusals_say_what_to_do(browser_for, cards, case, words):
    card = cards["good"]
    today = service_clock.today()
    if case == "young":
        card_citizen(card, birth_date=today.replace(year=today.year - 15))
    elif case == "document_expired":
        card_citizen(card, document_expiry=today - dt.timedelta(days=1))
    client = signed_in_with_card(browser_for, card)
    response = client.get("/card/register/")
    assert response.status_code == 403 and words in page_of(response)
    posted = client.post("/card/register/", {"terms": "on", "mobile": "916 000 111"})
    assert posted.status_code == 403
    assert not Citizen.objects.filter(doc_number=card.nic).exists()


def test_a_key_already_active_is_sent_to_the_personal_area(browser_for, cards, make_citizen):
    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name)
    client = signed_in_with_card(browser_for, card)
    response = client.get("/card/register/")
    page = page_of(response)
    assert response.status_code == 403 and "You already have a Digital Mobile Key" in page
    assert 'id="register-area"' in page and 'href="/area/"' in page


def test_a_mobile_number_of_another_live_key_is_refused(browser_for, cards, make_citizen, outbox):
    make_citizen(phone=MOBILE)  # someone else's key holds the number
    card = cards["good"]
    card_citizen(card)
    client = signed_in_with_card(browser_for, card)
    response = client.post("/card/register/", {"terms": "on", "mobile": MOBILE})
    assert response.status_code == 400
    assert "This mobile number is already tied to another Digital Mobile Key." in page_of(response)
    assert not Citizen.objects.filter(doc_number=card.nic).exists()
    assert outbox.last(MOBILE) is None or "#" not in outbox.last(MOBILE).body.split("\n")[-1]


def test_a_registration_left_half_way_continues_with_the_same_key(browser_for, cards, outbox):
    card = cards["good"]
    card_citizen(card)
    client = signed_in_with_card(browser_for, card)
    client.post("/card/register/", {"terms": "on", "email": EMAIL})
    first_key = Citizen.objects.get(doc_number=card.nic).key
    later = signed_in_with_card(browser_for, card)  # another day, another browser
    page = page_of(later.get("/card/register/"))
    assert 'id="register-resuming"' in page and EMAIL in page
    later.post("/card/register/", {"terms": "on", "email": EMAIL})
    later.post("/card/register/confirm/", {"email-code": outbox.last_code(EMAIL)})
    later.post("/card/register/pin/", {"new_pin": NEW_PIN, "new_pin_again": NEW_PIN})
    key = Citizen.objects.get(doc_number=card.nic).key
    assert key.pk == first_key.pk and key.status == KeyStatus.ACTIVE


# --- Recover / unlock --------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["locked", "blocked"])
def test_unlock_a_key_with_the_card(browser_for, cards, make_citizen, outbox, state):
    from chave import policy
    from chave.identity import services as identity

    card = cards["good"]
    card_citizen(card)
    key = make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE)
    if state == "locked":
        for _ in range(min(policy.get("pin_lock_steps"))):
            identity.check_login_pin(key, "9071")
    else:
        identity.block_key(key, by="test")
    key.refresh_from_db()
    assert key.status == state
    client = signed_in_with_card(browser_for, card, next_url="/card/recover/")
    page = page_of(client.get("/card/recover/"))
    assert f'data-status="{state}"' in page
    response = client.post("/card/recover/")
    assert response.status_code == 302 and response["Location"] == "/card/recover/pin/"
    assert "with your Citizen Card (recover or unlock)" in outbox.last(MOBILE).body  # in the page's language
    wrong = client.post("/card/recover/pin/", {"code": "000000", "new_pin": NEW_PIN, "new_pin_again": NEW_PIN})
    assert wrong.status_code == 400 and "The code is not correct" in page_of(wrong)
    key.refresh_from_db()
    assert key.status == state
    response = client.post("/card/recover/pin/", {"code": outbox.last_code(MOBILE), "new_pin": NEW_PIN,
                                                  "new_pin_again": NEW_PIN})
    assert response.status_code == 302 and response["Location"] == "/card/recover/done/"
    key.refresh_from_db()
    assert key.status == KeyStatus.ACTIVE and key.pin_failures == 0 and pins.verify(key.pin_hash, NEW_PIN)[0]
    assert "o PIN da sua Chave Móvel Digital foi alterado" in outbox.last(MOBILE).body  # the citizen speaks pt-PT
    assert identity.check_login_pin(key, NEW_PIN).ok


def test_recover_keeps_a_right_code_when_the_new_pin_is_the_old_one(browser_for, cards, make_citizen, outbox):
    card = cards["good"]
    card_citizen(card)
    make_citizen(nic=card.nic, full_name=card.full_name, phone=MOBILE, pin="4719")
    client = signed_in_with_card(browser_for, card, next_url="/card/recover/")
    client.post("/card/recover/")
    same = client.post("/card/recover/pin/", {"code": outbox.last_code(MOBILE), "new_pin": "4719",
                                              "new_pin_again": "4719"})
    assert same.status_code == 400 and "different from the current one" in page_of(same)
    assert 'name="code"' not in page_of(same)  # the code was right: it is not asked again
    done = client.post("/card/recover/pin/", {"new_pin": NEW_PIN, "new_pin_again": NEW_PIN})
    assert done.status_code == 302 and done["Location"] == "/card/recover/done/"


def test_recover_without_a_key_offers_registration(browser_for, cards):
    card = cards["good"]
    card_citizen(card)
    client = signed_in_with_card(browser_for, card, next_url="/card/recover/")
    response = client.get("/card/recover/")
    assert response.status_code == 403 and 'data-reason="no_key"' in page_of(response)
