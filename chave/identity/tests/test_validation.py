"""What the identity parsers accept, how they normalise it, and how they refuse the rest.

Every refusal is a ``ValidationError`` with a stable code (forms and the CLI map codes to fields)
and a message in the user's language.
"""

import datetime as dt

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from chave.identity import validation as v
from chave.identity.models import ContactKind


def refused(parse, value, **kwargs) -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        parse(value, **kwargs)
    return caught.value


WRONG_TYPES = [None, 12.5, ["912345678"], {"a": 1}, b"912345678"]


# --- NIC and Citizen Card document numbers ------------------------------------------------


@pytest.mark.parametrize(
    "typed, nic",
    [
        ("12345678", "12345678"),
        (" 1234 5678 ", "12345678"),
        ("00000000 0 ZZ4", "00000000"),  # full document number, check digits right
        ("000000000zz4", "00000000"),  # lower-case version letters
        ("15221248 0 ZW7", "15221248"),
    ],
)
def test_nic_is_eight_digits_or_a_valid_card_number(typed, nic):
    assert v.parse_nic(typed) == nic


@pytest.mark.parametrize(
    "typed",
    [
        "00000000 0 ZZ3",  # wrong final check digit
        "15221248 0 ZW6",
        "15221248 1 ZW7",  # wrong NIC check digit changes the final one
    ],
)
def test_card_number_with_wrong_check_digits_is_refused(typed):
    error = refused(v.parse_nic, typed)
    assert error.code == "nic_invalid"
    with translation.override("en"):
        assert "check the digits" in refused(v.parse_nic, typed).messages[0]


@pytest.mark.parametrize(
    "typed", ["", "1234567", "123456789", "1234567A", "١٢٣٤٥٦٧٨", "１２３４５６７８", "1" * 10_000, *WRONG_TYPES]
)
def test_anything_else_is_not_a_nic(typed):
    assert refused(v.parse_nic, typed).code == "nic_invalid"


# --- NIF -----------------------------------------------------------------------------------


@pytest.mark.parametrize("typed", ["501964843", " 501 964 843 ", "PT501964843"])
def test_nif_with_a_good_check_digit_is_accepted(typed):
    assert v.parse_nif(typed) == "501964843"


@pytest.mark.parametrize(
    "typed", ["501964844", "50196484", "5019648430", "٥٠١٩٦٤٨٤٣", "abcdefghi", "", "9" * 5000, *WRONG_TYPES]
)
def test_bad_nif_is_refused(typed):
    assert refused(v.parse_nif, typed).code == "nif_invalid"


# --- Mobile numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "typed, e164",
    [
        ("912 345 678", "+351912345678"),  # +351 assumed
        ("912-345-678", "+351912345678"),
        ("+351 962 345 678", "+351962345678"),
        ("00351 932345678", "+351932345678"),
        (912345678, "+351912345678"),
        ("+33 6 12 34 56 78", "+33612345678"),  # foreign mobiles are mobiles too
        ("+55 11 91234-5678", "+5511912345678"),
        ("+44 7911 123456", "+447911123456"),
    ],
)
def test_mobile_numbers_are_stored_in_e164(typed, e164):
    assert v.parse_mobile(typed) == e164


@pytest.mark.parametrize("typed", ["212 345 678", "+351 212 345 678", "+33 1 23 45 67 89", "800 200 200"])
def test_numbers_that_are_not_mobiles_are_refused(typed):
    error = refused(v.parse_mobile, typed)
    assert error.code == "mobile_not_mobile"


@pytest.mark.parametrize(
    "typed", ["", "   ", "12345", "abc", "+351 91", "+999 912345678", "tel 912345678", "91234567O", "912345678+",
              "9" * 40, True, *WRONG_TYPES]
)
def test_malformed_mobile_numbers_are_refused(typed):
    assert refused(v.parse_mobile, typed).code == "mobile_invalid"


def test_mobile_country():
    assert v.mobile_country("+351912345678") == "PT"
    assert v.mobile_country("+5511912345678") == "BR"
    assert v.mobile_country("+12015550123") == "US"


# --- E-mail, X, identifiers ----------------------------------------------------------------


def test_email_is_lower_cased():
    assert v.parse_email("  Ana.Silva@Example.PT ") == "ana.silva@example.pt"


@pytest.mark.parametrize(
    "typed", ["", "ana", "ana@", "@example.pt", "ana silva@example.pt", "ana@exa mple.pt",
              "a" * 250 + "@example.pt", *WRONG_TYPES]
)
def test_bad_email_is_refused(typed):
    assert refused(v.parse_email, typed).code == "email_invalid"


@pytest.mark.parametrize("typed", ["12", " 783214 ", "1580661436132757504", "9223372036854775807"])
def test_x_account_is_a_numeric_user_id(typed):
    assert v.parse_x_user_id(typed) == typed.strip()


@pytest.mark.parametrize(
    "typed", ["", "0", "0123", "@jack", "jack", "12 34", "-5", "9223372036854775808", "1" * 25, "١٢٣", *WRONG_TYPES]
)
def test_bad_x_user_id_is_refused(typed):
    assert refused(v.parse_x_user_id, typed).code == "x_invalid"


@pytest.mark.parametrize(
    "typed, expected",
    [
        ("912345678", (ContactKind.MOBILE, "+351912345678")),
        ("ANA@example.pt", (ContactKind.EMAIL, "ana@example.pt")),
    ],
)
def test_login_identifier_is_a_mobile_or_an_email(typed, expected):
    assert v.parse_identifier(typed) == expected


@pytest.mark.parametrize("typed, code", [("", "identifier_required"), (None, "identifier_required"),
                                         ("9" * 300, "identifier_invalid"), ("ana@", "email_invalid"),
                                         ("hello", "mobile_invalid")])
def test_bad_identifier_is_refused(typed, code):
    assert refused(v.parse_identifier, typed).code == code


# --- Names, dates, foreign documents ----------------------------------------------------------


def test_names_dates_and_documents():
    assert v.parse_name("  Maria   da  Silva ") == "Maria da Silva"
    assert refused(v.parse_name, "").code == "name_required"
    assert refused(v.parse_name, "x" * 101).code == "name_long"
    assert refused(v.parse_name, "Maria 2").code == "name_invalid"
    assert v.parse_date("1980-05-17") == dt.date(1980, 5, 17)
    assert v.parse_date(dt.datetime(1980, 5, 17, 10, 0)) == dt.date(1980, 5, 17)
    for bad in ("17/05/1980", "1980-13-01", "", None, "9" * 1000):
        assert refused(v.parse_date, bad).code == "date_invalid"
    assert v.parse_doc_type("Residence-Permit") == "residence_permit"
    assert refused(v.parse_doc_type, "driving_licence").code == "doc_type_invalid"
    assert v.parse_country(" br ") == "BR"
    assert refused(v.parse_country, "BRA").code == "country_invalid"
    assert v.parse_doc_number("ab 123-456") == "AB123456"
    assert refused(v.parse_doc_number, "AB").code == "doc_number_invalid"
    assert refused(v.parse_doc_number, "A" * 21).code == "doc_number_invalid"


# --- PIN rules --------------------------------------------------------------------------------

BIRTH = dt.date(1980, 5, 17)


@pytest.mark.parametrize("pin", ["4719", "83920", "582047", "5820471", "47190358", "1357", "1243", "0918"])
def test_good_pins_pass(pin):
    assert v.check_pin_rules(pin, birth_date=BIRTH) == pin


@pytest.mark.parametrize(
    "pin", ["", "123", "1" * 9, "47190358 1", "12a4", " 4719", "4719\n", "４７１９", "٤٧١٩", "47.9", "-4719",
            4719, None, ["4719"], "4" * 10_000]
)
def test_pin_must_be_4_to_8_ascii_digits(pin):
    assert refused(v.check_pin_rules, pin).code == "pin_format"


@pytest.mark.parametrize("pin", ["0000", "7777", "99999999"])
def test_one_repeated_digit_is_refused(pin):
    assert refused(v.check_pin_rules, pin).code == "pin_trivial"


@pytest.mark.parametrize("pin", ["1234", "0123", "12345678", "3456789", "9876", "98765", "43210", "7890", "67890", "0987"])
def test_runs_are_refused(pin):
    assert refused(v.check_pin_rules, pin).code == "pin_trivial"


@pytest.mark.parametrize(
    "pin",
    [
        "1980",  # the year
        "1705", "0517",  # day and month
        "170580", "051780", "800517",  # with a 2-digit year
        "17051980", "05171980", "19800517", "19801705",  # with the full year
        "17580", "5171980", "1751980",  # without the leading zero of the month
    ],
)
def test_birth_date_forms_are_refused(pin):
    assert refused(v.check_pin_rules, pin, birth_date=BIRTH).code == "pin_birth_date"


def test_birth_date_rule_is_about_the_citizen():
    # Someone else's birth date is just a PIN; without a birth date it cannot apply.
    assert v.check_pin_rules("17051980", birth_date=dt.date(1991, 2, 3)) == "17051980"
    assert v.check_pin_rules("1980") == "1980"


def test_pin_lengths_come_from_the_policy(settings):
    settings.CHAVE_POLICY = {**settings.CHAVE_POLICY, "pin_min_length": 6}
    assert refused(v.check_pin_rules, "4719").code == "pin_format"
    assert v.check_pin_rules("471903") == "471903"


def test_pin_error_never_contains_the_pin():
    for pin in ("47", "17051980"):
        error = refused(v.check_pin_rules, pin, birth_date=BIRTH)
        assert pin not in " ".join(error.messages)


# --- Messages in the user's language ---------------------------------------------------------


@pytest.mark.parametrize(
    "parse, value, template, params",
    [
        (v.check_pin_rules, "1111", "The PIN cannot be one digit repeated.", None),
        (v.check_pin_rules, "12", "The PIN must have %(low)d to %(high)d digits, digits only.", {"low": 4, "high": 8}),
        (v.parse_mobile, "212345678", "This number is not a mobile number.", None),
    ],
)
def test_messages_follow_the_active_language(parse, value, template, params):
    def expected():
        text = translation.gettext(template)
        return text % params if params else text

    with translation.override("en"):
        error = refused(parse, value)
        assert error.messages == [template % params if params else template]
    with translation.override("pt-pt"):
        # Whatever the Portuguese catalogue says (English until it is translated), the message
        # goes through it when raised, in the language active then, with the same code.
        assert refused(parse, value).messages == [expected()]
        assert refused(parse, value).code == error.code
