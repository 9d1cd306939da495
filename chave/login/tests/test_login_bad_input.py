"""Bad input on every login field, steps out of order, wrong methods: a clear message tied to the
field in the citizen's language and a 4xx status, never a 500, and nothing half-written."""

import datetime as dt

import pytest
from django.contrib.sessions.backends.db import SessionStore

from chave import policy
from chave.audit.models import AuditEvent
from chave.codes.models import OneTimeCode
from chave.delivery.models import OutboundMessage
from chave.login import services
from chave.login.models import LoginTransaction

from .pages import PHONE, PIN, body, client_in, ends_at, field_error, field_input, notices, says, session_key, sign_in

pytestmark = pytest.mark.django_db(transaction=True)

EMAIL = "maria@example.pt"
PIN_FORMAT = "The PIN must have %(low)d to %(high)d digits, digits only."
CODE_FORMAT = "The security code has %(n)d digits."
EXPIRED = "Your sign-in has expired or was not started. Please start again."


def _pin_format(lang="en"):
    return says(PIN_FORMAT, lang, low=policy.get("pin_min_length"), high=policy.get("pin_max_length"))


def _code_format(lang="en"):
    return says(CODE_FORMAT, lang, n=policy.get("code_digits"))


def _nothing_written(key=None):
    """No login began: no transaction, no PIN attempt counted or audited, no code, no message."""
    assert not LoginTransaction.objects.exists()
    assert not AuditEvent.objects.filter(event="pin.attempt").exists()
    assert not OneTimeCode.objects.exists()
    assert not OutboundMessage.objects.filter(kind="code").exists()
    if key is not None:
        key.refresh_from_db()
        assert key.pin_failures == 0


def _assert_field_refused(response, field, message, case=""):
    assert response.status_code == 400, case
    assert field_error(response, field) == message, case
    tag = field_input(response, field)
    assert 'aria-invalid="true"' in tag and f"id_{field}_error" in tag, case
    # The summary at the top links to the field.
    assert f'href="#id_{field}' in body(response), case


# --- identifier + PIN ----------------------------------------------------------------------

def _parse_refusal(typed, lang="en"):
    """What the identity validation says of ``typed`` in ``lang`` (its wording is identity's)."""
    from django.core.exceptions import ValidationError
    from django.utils import translation

    from chave.identity.validation import parse_identifier

    with translation.override(lang):
        try:
            parse_identifier(typed)
        except ValidationError as exc:
            return " ".join(str(m) for m in exc.messages)
    raise AssertionError(f"{typed!r} was accepted")


# Refused by the form itself (its own words) or by the identity validation (PARSED: its words).
PARSED = object()
IDENTIFIER_CASES = [
    ("", "Enter your mobile number or e-mail address."),
    ("   ", "Enter your mobile number or e-mail address."),
    ("9" * 10_000, "This is neither a mobile number nor an e-mail address."),
    ("maria@" + "x" * 10_000 + ".pt", "This is neither a mobile number nor an e-mail address."),
    ("912\x00345678", "Null characters are not allowed."),
    ("abc", PARSED),
    ("12", PARSED),
    ("91234567", PARSED),
    ("+999 912345678", PARSED),
    ("+351 212 345 678", PARSED),
    ("maria@", PARSED),
    ("maria@@example.pt", PARSED),
    ("<script>alert(1)</script>@x", PARSED),
]


def test_bad_identifier_is_refused_at_the_field(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    for typed, message in IDENTIFIER_CASES:
        response = sign_in(client_in("en"), typed, PIN)
        expected = _parse_refusal(typed) if message is PARSED else says(message)
        _assert_field_refused(response, "identifier", expected, case=typed[:40])
    _nothing_written(key)


BAD_PINS = ["47a9", "4 7 1 9", "٤٧١٩", "４７１９", "47١9", "123", "123456789", "9" * 10_000, "-4719", "4719.0", "0x12"]


def test_bad_pin_format_is_refused_at_the_field_and_costs_no_attempt(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    for typed in BAD_PINS:
        response = sign_in(client_in("en"), "912345678", typed)
        _assert_field_refused(response, "pin", _pin_format(), case=typed[:40])
        assert "value=" not in field_input(response, "pin")  # a PIN is never shown back
    _nothing_written(key)


def test_empty_form_says_what_is_missing_for_each_field(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    response = client_in("en").post("/login/", {})
    _assert_field_refused(response, "identifier", says("Enter your mobile number or e-mail address."))
    _assert_field_refused(response, "pin", says("Enter your PIN."))
    _nothing_written(key)


def test_a_field_sent_twice_is_refused(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    for field in ("identifier", "pin"):
        data = {"identifier": "912345678", "pin": PIN}
        data[field] = [data[field], data[field]]
        response = client_in("en").post("/login/", data)
        _assert_field_refused(response, field, says("Enter one value only."), case=field)
    _nothing_written(key)


def test_a_body_that_is_not_a_form_is_refused_as_empty(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    response = client_in("en").post("/login/", {"identifier": ["912345678"], "pin": {"a": 1}},
                                    content_type="application/json")
    _assert_field_refused(response, "identifier", says("Enter your mobile number or e-mail address."))
    _nothing_written(key)


def test_messages_are_in_the_citizens_language(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    response = sign_in(client_in("pt-pt"), "abc", "47a9")
    assert response.status_code == 400
    assert 'lang="pt-PT"' in body(response)
    assert field_error(response, "identifier") == _parse_refusal("abc", "pt-pt")
    assert field_error(response, "pin") == _pin_format("pt-pt")
    _nothing_written(key)


# --- channel choice ------------------------------------------------------------------------


@pytest.fixture
def at_channel_choice(make_citizen):
    make_citizen(phone=PHONE, email=EMAIL, pin=PIN)
    client = client_in("en")
    assert ends_at(sign_in(client, EMAIL, PIN), "/login/channel/")
    return client


CHANNEL_CASES = [
    ({}, "Choose where to receive the code."),
    ({"channel": ""}, "Choose where to receive the code."),
    ({"channel": "x"}, "Choose one of the options shown."),  # X is off
    ({"channel": "fax"}, "Choose one of the options shown."),
    ({"channel": "SMS"}, "Choose one of the options shown."),
    ({"channel": "sms\x00"}, "Choose one of the options shown."),
    ({"channel": "s" * 10_000}, "Choose one of the options shown."),
    ({"channel": ["sms", "email"]}, "Enter one value only."),
    ({"channel": ["sms", "sms"]}, "Enter one value only."),
]


def test_bad_channel_choice_is_refused_and_sends_nothing(at_channel_choice):
    for data, message in CHANNEL_CASES:
        response = at_channel_choice.post("/login/channel/", data)
        case = str(data)[:40]
        assert response.status_code == 400, case
        assert field_error(response, "channel") == says(message), case
        assert 'aria-invalid="true"' in field_input(response, "channel"), case
    assert not OneTimeCode.objects.exists()
    assert not OutboundMessage.objects.filter(kind="code").exists()
    assert LoginTransaction.objects.get().status == LoginTransaction.Status.PIN_OK
    # The form still works afterwards.
    assert ends_at(at_channel_choice.post("/login/channel/", {"channel": "email"}), "/login/code/")


# --- code ----------------------------------------------------------------------------------


@pytest.fixture
def at_code(make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    client = client_in("en")
    assert ends_at(sign_in(client, "912345678", PIN), "/login/code/")
    client.code = outbox.last_code(PHONE)
    return client


CODE_CASES = [
    ("", "Enter the security code you received."),
    ("12345", CODE_FORMAT),
    ("1234567", CODE_FORMAT),
    ("12a456", CODE_FORMAT),
    ("abcdef", CODE_FORMAT),
    ("١٢٣٤٥٦", CODE_FORMAT),
    ("１２３４５６", CODE_FORMAT),
    ("12-34-56", CODE_FORMAT),
    ("9" * 10_000, CODE_FORMAT),
    ("12345\x00", "Null characters are not allowed."),
    (["123456", "654321"], "Enter one value only."),
]


def test_bad_code_is_refused_at_the_field_and_costs_no_attempt(at_code):
    for typed, message in CODE_CASES:
        response = at_code.post("/login/code/", {"code": typed})
        expected = _code_format() if message == CODE_FORMAT else says(message)
        _assert_field_refused(response, "code", expected, case=str(typed)[:40])
    assert OneTimeCode.objects.get().wrong_attempts == 0
    assert not AuditEvent.objects.filter(event="login").exists()
    # The real code, typed with spaces as people copy it, still works.
    spaced = at_code.code[:3] + " " + at_code.code[3:]
    assert ends_at(at_code.post("/login/code/", {"code": spaced}), "/login/done/")


# --- new PIN (after a temporary one) -------------------------------------------------------


@pytest.fixture
def at_new_pin(make_citizen, outbox):
    key = make_citizen(phone=PHONE, pin=None)
    client = client_in("en")
    assert ends_at(sign_in(client, "912345678", key.temporary_pin), "/login/code/")
    assert ends_at(client.post("/login/code/", {"code": outbox.last_code(PHONE)}), "/login/new-pin/")
    client.key = key
    return client


NEW_PIN_CASES = [
    ({}, "new_pin", "Choose a new PIN."),
    ({"new_pin": "5820"}, "new_pin_again", "Type the new PIN again."),
    ({"new_pin": "58a0", "new_pin_again": "58a0"}, "new_pin", PIN_FORMAT),
    ({"new_pin": "٥٨٢٠", "new_pin_again": "٥٨٢٠"}, "new_pin", PIN_FORMAT),
    ({"new_pin": "9" * 10_000, "new_pin_again": "9" * 10_000}, "new_pin", PIN_FORMAT),
    ({"new_pin": "582", "new_pin_again": "582"}, "new_pin", PIN_FORMAT),
    ({"new_pin": "7777", "new_pin_again": "7777"}, "new_pin", "The PIN cannot be one digit repeated."),
    ({"new_pin": "3456", "new_pin_again": "3456"}, "new_pin", "The PIN cannot be a run of digits such as 1234 or 9876."),
    ({"new_pin": "1980", "new_pin_again": "1980"}, "new_pin", "The PIN cannot be your birth date or year."),
    ({"new_pin": "5820", "new_pin_again": "5821"}, "new_pin_again", "The two PINs are not the same."),
    ({"new_pin": ["5820", "6931"], "new_pin_again": "5820"}, "new_pin", "Enter one value only."),
]


def test_bad_new_pin_is_refused_at_the_field_and_changes_nothing(at_new_pin):
    for data, field, message in NEW_PIN_CASES:
        response = at_new_pin.post("/login/new-pin/", data)
        expected = _pin_format() if message == PIN_FORMAT else says(message)
        _assert_field_refused(response, field, expected, case=str(data)[:60])
    key = at_new_pin.key
    key.refresh_from_db()
    assert key.pin_is_temporary
    assert not AuditEvent.objects.filter(event__in=["pin.change", "login"]).exists()
    assert LoginTransaction.objects.get().status == LoginTransaction.Status.PIN_CHANGE


# --- steps out of order, stale and tampered transactions, methods --------------------------


LATER_STEPS = [
    ("get", "/login/channel/"), ("post", "/login/channel/"),
    ("get", "/login/code/"), ("post", "/login/code/"),
    ("post", "/login/code/resend/"),
    ("get", "/login/new-pin/"), ("post", "/login/new-pin/"),
]


def test_a_later_step_without_the_pin_step_sends_the_citizen_to_the_start(db):
    for method, path in LATER_STEPS:
        client = client_in("en")
        data = {"code": "123456", "channel": "sms", "new_pin": "5820", "new_pin_again": "5820"}
        response = getattr(client, method)(path, data if method == "post" else None, follow=True)
        case = f"{method} {path}"
        assert response.redirect_chain and response.redirect_chain[-1][0].endswith("/login/"), case
        assert response.status_code == 200, case
        assert says(EXPIRED) in notices(response), case
    assert not OneTimeCode.objects.exists()
    assert not LoginTransaction.objects.exists()


def test_done_page_without_a_login_goes_to_the_start(db):
    assert ends_at(client_in("en").get("/login/done/"), "/login/")


def test_steps_already_passed_or_not_reached_lead_to_the_current_step(at_code):
    assert ends_at(at_code.get("/login/new-pin/"), "/login/code/")
    assert ends_at(at_code.post("/login/new-pin/", {"new_pin": "5820", "new_pin_again": "5820"}), "/login/code/")
    assert at_code.get("/login/code/").status_code == 200


def test_a_stale_login_is_sent_back_to_the_start(at_code, clock):
    clock.travel(dt.timedelta(seconds=policy.get("login_transaction_seconds")))
    response = at_code.post("/login/code/", {"code": at_code.code}, follow=True)
    assert response.redirect_chain[-1][0].endswith("/login/")
    assert says(EXPIRED) in notices(response)
    assert not AuditEvent.objects.filter(event="login").exists()


def test_a_login_whose_transaction_is_gone_is_sent_back_to_the_start(at_code):
    LoginTransaction.objects.all().delete()
    response = at_code.post("/login/code/", {"code": at_code.code}, follow=True)
    assert response.redirect_chain[-1][0].endswith("/login/")
    assert says(EXPIRED) in notices(response)


def test_a_garbled_transaction_in_the_session_is_treated_as_none(at_code):
    for stored in ["not-a-uuid", "00000000-0000-0000-0000-000000000000", 12, ["x"], {"id": 1}]:
        session = SessionStore(session_key(at_code))
        session[services.SESSION_TRANSACTION] = stored
        session.save()
        response = at_code.get("/login/code/", follow=True)
        assert response.redirect_chain[-1][0].endswith("/login/"), stored
        assert says(EXPIRED) in notices(response), stored


def test_post_only_endpoints_refuse_get(db):
    for path in ["/login/code/resend/", "/login/logout/"]:
        assert client_in("en").get(path).status_code == 405, path


def test_other_methods_are_refused(db):
    client = client_in("en")
    for path in ["/login/", "/login/channel/", "/login/code/", "/login/new-pin/", "/login/done/"]:
        for method in ("put", "delete", "patch"):
            assert getattr(client, method)(path).status_code == 405, f"{method} {path}"
    assert client.post("/login/done/").status_code == 405


# --- CSRF ----------------------------------------------------------------------------------


def _csrf_token(client, path):
    page = body(client.get(path))
    import re

    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def test_a_pin_post_without_the_csrf_token_is_refused(make_citizen):
    key = make_citizen(phone=PHONE, pin=PIN)
    client = client_in("en", enforce_csrf_checks=True)
    client.get("/login/")
    refused = sign_in(client, "912345678", PIN)
    assert refused.status_code == 403
    _nothing_written(key)
    token = _csrf_token(client, "/login/")
    assert ends_at(client.post("/login/", {"identifier": "912345678", "pin": PIN, "csrfmiddlewaretoken": token}),
                   "/login/code/")


def test_a_code_post_without_the_csrf_token_is_refused(make_citizen, outbox):
    make_citizen(phone=PHONE, pin=PIN)
    client = client_in("en", enforce_csrf_checks=True)
    token = _csrf_token(client, "/login/")
    client.post("/login/", {"identifier": "912345678", "pin": PIN, "csrfmiddlewaretoken": token})
    code = outbox.last_code(PHONE)
    assert client.post("/login/code/", {"code": code}).status_code == 403
    assert client.post("/login/code/", {"code": code, "csrfmiddlewaretoken": "x" * 64}).status_code == 403
    assert client.post("/login/code/resend/").status_code == 403
    assert not AuditEvent.objects.filter(event="login").exists()
    token = _csrf_token(client, "/login/code/")
    assert ends_at(client.post("/login/code/", {"code": code, "csrfmiddlewaretoken": token}), "/login/done/")
