"""Nobody learns from the login page whether a number has a key, or in which state it is."""

import datetime as dt
import re

import pytest

from chave import policy
from chave.identity import services as identity
from chave.identity.models import KeyStatus

from .pages import PHONE, PIN, body, client_in, says, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

WRONG = "5820"


def _comparable(response) -> str:
    """The page as an observer compares it: everything but the per-response CSRF token."""
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', 'name="csrfmiddlewaretoken"', body(response))


def test_unknown_wrong_locked_blocked_and_cancelled_get_the_same_page(make_citizen, clock):
    # Every attempt types the same number, from a fresh browser each time.
    def attempt(pin):
        return sign_in(client_in("en"), "912 345 678", pin)

    answers = {"unknown number": attempt(WRONG)}
    key = make_citizen(phone=PHONE, pin=PIN)
    answers["wrong PIN"] = attempt(WRONG)
    attempt(WRONG)
    answers["wrong PIN that locks"] = attempt(WRONG)
    key.refresh_from_db()
    assert key.status == KeyStatus.LOCKED
    answers["right PIN, locked key"] = attempt(PIN)
    answers["wrong PIN, locked key"] = attempt(WRONG)

    # Let each lock run out and fail again until the key is blocked.
    while key.status != KeyStatus.BLOCKED:
        clock.travel(dt.timedelta(seconds=max(policy.get("pin_lock_steps").values())))
        last = attempt(WRONG)
        key.refresh_from_db()
    answers["wrong PIN that blocks"] = last
    answers["right PIN, blocked key"] = attempt(PIN)

    identity.cancel_key(key, by="test")
    answers["right PIN, cancelled key"] = attempt(PIN)

    # The released number, registered again by someone whose contact is not verified yet.
    unverified = make_citizen(phone=PHONE, pin=PIN, verified=False)
    assert unverified.status == KeyStatus.PENDING
    answers["right PIN, key pending (contact not verified)"] = sign_in(client_in("en"), "912 345 678", PIN)

    reference = answers["unknown number"]
    assert reference.status_code == 400
    assert says("The mobile number, e-mail or PIN is not correct. After several wrong PINs the key is locked "
                "for a while, and its owner is told by SMS or e-mail.") in " ".join(body(reference).split())
    for what, response in answers.items():
        assert response.status_code == reference.status_code, what
        assert _comparable(response) == _comparable(reference), what
        assert "sessionid" not in response.cookies, what


def test_unknown_email_and_wrong_pin_for_an_email_get_the_same_page(make_citizen):
    make_citizen(phone=None, email="maria@example.pt", pin=PIN)
    wrong = sign_in(client_in("en"), "maria@example.pt", WRONG)
    make_citizen(phone=None, email="ana@example.pt", pin=PIN)
    identity.cancel_key(identity.find_key_by_contact("email", "ana@example.pt"), by="test")
    cancelled = sign_in(client_in("en"), "maria@example.pt", WRONG)
    assert wrong.status_code == cancelled.status_code == 400
    assert _comparable(wrong) == _comparable(cancelled)
    unknown = sign_in(client_in("en"), "nobody@example.pt", WRONG)
    assert unknown.status_code == 400
    assert _comparable(unknown).replace("nobody@example.pt", "maria@example.pt") == _comparable(wrong)


def test_no_session_is_opened_for_a_refused_pin(make_citizen):
    make_citizen(phone=PHONE, pin=PIN)
    for pin in (WRONG, "6931"):
        client = client_in("en")
        response = sign_in(client, "912345678", pin)
        assert response.status_code == 400
        assert "sessionid" not in response.cookies
