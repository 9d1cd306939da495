"""Parsing and validation of identity input, with messages in the user's language.

Every function returns the normalised value or raises ``django.core.exceptions.ValidationError``
with a translated message and a stable ``code``; forms, the CLI and APIs all call these.
"""

from __future__ import annotations

import datetime as dt
import re

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.translation import gettext_lazy as _
from stdnum import exceptions as stdnum_exceptions
from stdnum.pt import cc as pt_cc
from stdnum.pt import nif as pt_nif

from chave import policy

from .models import ContactKind, DocType

MAX_IDENTIFIER_LENGTH = 254
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_DOC_NUMBER = re.compile(r"^[A-Z0-9]{3,20}$")
_PHONE_CHARS = re.compile(r"\+?[\d\s().\-/]+")


def parse_nic(text: str) -> str:
    """The 8-digit civil number, from a NIC or a full Citizen Card document number.

    A document number (NIC + check digit + version + check digit, as printed on the card) is
    checked with ``stdnum.pt.cc`` and reduced to its NIC.
    """
    raw = re.sub(r"[\s-]", "", str(text or "")).upper()
    # [0-9], not \d: \d also matches other scripts' digits, which no registry number has.
    if re.fullmatch(r"[0-9]{8}", raw):
        return raw
    if re.fullmatch(r"[0-9]{9}[A-Z0-9]{2}[0-9]", raw):
        try:
            return pt_cc.validate(raw)[:8]
        except stdnum_exceptions.ValidationError:
            raise ValidationError(_("This Citizen Card number is not valid: check the digits."), code="nic_invalid")
    raise ValidationError(
        _("Enter the civil identification number (NIC): 8 digits, as on your Citizen Card."), code="nic_invalid"
    )


def parse_nif(text: str) -> str:
    raw = re.sub(r"\s", "", str(text or ""))
    try:
        return pt_nif.validate(raw)
    except stdnum_exceptions.ValidationError:
        raise ValidationError(_("This tax number (NIF) is not valid: it has 9 digits and a check digit."), code="nif_invalid")


def parse_country(text: str) -> str:
    raw = str(text or "").strip().upper()
    if not _COUNTRY.match(raw):
        raise ValidationError(_("Enter the issuing country as a two-letter code, such as BR or FR."), code="country_invalid")
    return raw


def parse_doc_type(text: str) -> str:
    raw = str(text or "").strip().lower().replace("-", "_")
    if raw not in {t.value for t in DocType}:
        raise ValidationError(
            _("Document type must be one of: passport, residence_permit, residence_card."), code="doc_type_invalid"
        )
    return raw


def parse_doc_number(text: str) -> str:
    raw = re.sub(r"[\s-]", "", str(text or "")).upper()
    if not _DOC_NUMBER.match(raw):
        raise ValidationError(_("The document number has 3 to 20 letters and digits."), code="doc_number_invalid")
    return raw


def parse_name(text: str, *, max_length: int = 100) -> str:
    value = " ".join(str(text or "").split())
    if not value:
        raise ValidationError(_("Enter the name as it is on the document."), code="name_required")
    if len(value) > max_length:
        raise ValidationError(_("The name is too long (at most %(n)d characters).") % {"n": max_length}, code="name_long")
    if any(ch.isdigit() or ord(ch) < 32 for ch in value):
        raise ValidationError(_("A name cannot contain digits or control characters."), code="name_invalid")
    return value


def parse_date(text) -> dt.date:
    if isinstance(text, dt.datetime):
        return text.date()
    if isinstance(text, dt.date):
        return text
    try:
        return dt.date.fromisoformat(str(text or "").strip())
    except ValueError:
        raise ValidationError(_("Enter a date as YYYY-MM-DD."), code="date_invalid")


def parse_mobile(text: str) -> str:
    """A mobile number in E.164; ``+351`` is assumed when no country code is typed."""
    raw = str(text).strip() if isinstance(text, (str, int)) and not isinstance(text, bool) else ""
    # Digits and the usual separators only: phonenumbers would otherwise dig a number out of any
    # text around it ("tel 912345678 please").
    if not raw or len(raw) > 32 or not _PHONE_CHARS.fullmatch(raw):
        raise ValidationError(_("Enter a mobile number, such as 912 345 678."), code="mobile_invalid")
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    try:
        number = phonenumbers.parse(raw, "PT")
    except phonenumbers.NumberParseException:
        raise ValidationError(_("This is not a valid mobile number."), code="mobile_invalid")
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_("This is not a valid mobile number."), code="mobile_invalid")
    if phonenumbers.number_type(number) not in (
        phonenumbers.PhoneNumberType.MOBILE,
        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
    ):
        raise ValidationError(_("This number is not a mobile number."), code="mobile_not_mobile")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def mobile_country(e164: str) -> str | None:
    return phonenumbers.region_code_for_number(phonenumbers.parse(e164, None))


def parse_email(text: str) -> str:
    raw = str(text or "").strip()
    if len(raw) > MAX_IDENTIFIER_LENGTH:
        raise ValidationError(_("This e-mail address is too long."), code="email_invalid")
    try:
        EmailValidator()(raw)
    except ValidationError:
        raise ValidationError(_("This is not a valid e-mail address."), code="email_invalid")
    # Addresses are compared case-insensitively: one person, one address, whatever the case typed.
    return raw.lower()


# X user ids are positive 64-bit integers ("snowflakes").
_X_USER_ID_MAX = 2**63 - 1


def parse_x_user_id(text: str) -> str:
    raw = str(text or "").strip()
    if not re.fullmatch(r"[1-9][0-9]{0,18}", raw) or int(raw) > _X_USER_ID_MAX:
        raise ValidationError(_("An X account is given by its numeric user id."), code="x_invalid")
    return raw


def parse_identifier(text: str) -> tuple[str, str]:
    """What a citizen types to log in: a mobile number or an e-mail address."""
    raw = str(text or "").strip()
    if not raw:
        raise ValidationError(_("Enter your mobile number or e-mail address."), code="identifier_required")
    if len(raw) > MAX_IDENTIFIER_LENGTH:
        raise ValidationError(_("This is neither a mobile number nor an e-mail address."), code="identifier_invalid")
    if "@" in raw:
        return ContactKind.EMAIL, parse_email(raw)
    return ContactKind.MOBILE, parse_mobile(raw)


def _birth_date_forms(birth_date: dt.date) -> set[str]:
    """The birth date as people write it: the year, day and month, and the full date in the
    usual orders, with or without leading zeros and with a 2- or 4-digit year."""
    days = {f"{birth_date.day:02d}", str(birth_date.day)}
    months = {f"{birth_date.month:02d}", str(birth_date.month)}
    years = {f"{birth_date.year:04d}", f"{birth_date.year % 100:02d}"}
    forms = {f"{birth_date.year:04d}"}
    for d in days:
        for m in months:
            forms |= {d + m, m + d}
            for y in years:
                forms |= {d + m + y, m + d + y, y + m + d, y + d + m}
    return forms


# Runs as they lie on a keypad, where 0 follows 9: 7890 and 0987 are runs too.
_RUN_UP = "01234567890"
_RUN_DOWN = _RUN_UP[::-1]


def _is_run(pin: str) -> bool:
    return pin in _RUN_UP or pin in _RUN_DOWN


def check_pin_rules(pin, *, birth_date: dt.date | None = None) -> str:
    """A login or signing PIN as ``domain.md`` wants it: 4-8 digits, not trivial.

    Refuses one repeated digit, ascending or descending runs and the citizen's birth date or
    year in common forms. The PIN itself never appears in the error.
    """
    low, high = policy.get("pin_min_length"), policy.get("pin_max_length")
    if not isinstance(pin, str) or not pin.isascii() or not pin.isdigit() or not (low <= len(pin) <= high):
        raise ValidationError(
            _("The PIN must have %(low)d to %(high)d digits, digits only.") % {"low": low, "high": high},
            code="pin_format",
        )
    if len(set(pin)) == 1:
        raise ValidationError(_("The PIN cannot be one digit repeated."), code="pin_trivial")
    if _is_run(pin):
        raise ValidationError(_("The PIN cannot be a run of digits such as 1234 or 9876."), code="pin_trivial")
    if birth_date and pin in _birth_date_forms(birth_date):
        raise ValidationError(_("The PIN cannot be your birth date or year."), code="pin_birth_date")
    return pin
